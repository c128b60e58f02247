"""Default BMC credentials from the environment, so they need not be stored in receivers.json.

cc-lib (after v2.12) reads the global `username`/`password` of the ipmi and redfish receivers from
`$CC_<KIND>_USERNAME` / `$CC_<KIND>_PASSWORD`, or from the files named by
`$CC_<KIND>_USERNAME_FILE` / `$CC_<KIND>_PASSWORD_FILE`, when the configuration has none. A named
file that cannot be read is an error, not a silent fallback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["env_credential"]


def env_credential(kind: str, what: str, environ: Mapping[str, str] | None = None) -> str | None:
    """`env_credential("IPMI", "PASSWORD")` → value of $CC_IPMI_PASSWORD or of its _FILE, else None.

    Raises OSError (with the variable's name) when the named file cannot be read.
    """
    env = os.environ if environ is None else environ
    var = f"CC_{kind}_{what}"
    value = env.get(var)
    if value:
        return value
    path = env.get(var + "_FILE")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    except OSError as e:
        raise OSError(f"${var}_FILE: cannot read {path!r}: {e.strerror or e}") from e
