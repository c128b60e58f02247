"""The installed `cc-gen-keypair` prints usable keys and signs tokens the other side accepts."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cccommon import jwt as ccjwt

EXE = Path(sys.executable).parent / "cc-gen-keypair"
DEMO_PUB = "kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0="
DEMO_PRIV = "dtPC/6dWJFKZK7KZ78CvWuynylOmjBFyMsUWArwmodOTN9itjL5POlqdZkcnmpJ0yPm4pRaCrvgFaFAbpyik/Q=="


def run(*args, env=None, cwd=None):
    if not EXE.exists():
        pytest.skip(f"{EXE} not installed")
    e = {k: v for k, v in os.environ.items() if k != "JWT_PRIVATE_KEY"}
    e.update(env or {})
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, env=e, cwd=cwd, timeout=30)


def test_generate_and_sign_roundtrip(tmp_path):
    r = run()
    assert r.returncode == 0, r.stderr
    pub = re.search(r"^JWT_PUBLIC_KEY=(\S+)$", r.stdout, re.M).group(1)
    priv = re.search(r"^JWT_PRIVATE_KEY=(\S+)$", r.stdout, re.M).group(1)
    assert "NO JWT token" in r.stdout
    s = run("-sign", "-user", "admin", "-roles", "admin,api", "-key", priv)
    assert s.returncode == 0, s.stderr
    claims = ccjwt.verify(s.stdout.strip(), pub)
    assert claims["sub"] == "admin" and claims["roles"] == ["admin", "api"]
    assert "iat" in claims and "exp" not in claims
    with pytest.raises(ccjwt.TokenError):
        ccjwt.verify(s.stdout.strip(), DEMO_PUB)


def test_sign_from_env_var_and_env_file(tmp_path):
    s = run("--sign", "--user=api", "--roles=api", "-max-age=2000h", env={"JWT_PRIVATE_KEY": DEMO_PRIV})
    assert s.returncode == 0, s.stderr
    claims = ccjwt.verify(s.stdout.strip(), DEMO_PUB)
    assert claims["exp"] - claims["iat"] == 2000 * 3600
    (tmp_path / ".env").write_text(f'# keys\nJWT_PUBLIC_KEY="{DEMO_PUB}"\nJWT_PRIVATE_KEY="{DEMO_PRIV}"\n')
    s = run("-sign", "-user", "demo", cwd=tmp_path)
    assert s.returncode == 0, s.stderr
    assert ccjwt.verify(s.stdout.strip(), DEMO_PUB) == {
        "sub": "demo",
        "roles": [],
        "iat": ccjwt.verify(s.stdout.strip(), DEMO_PUB)["iat"],
    }


def test_sign_errors(tmp_path):
    r = run("-sign", "-user", "x", cwd=tmp_path)
    assert r.returncode == 2 and "private key" in r.stderr
    r = run("-sign", "-key", DEMO_PRIV)
    assert r.returncode == 2 and "-user" in r.stderr
    r = run("-sign", "-user", "x", "-key", "bm9wZQ==")
    assert r.returncode == 2 and "invalid private key" in r.stderr
    r = run("-sign", "-user", "x", "-key", DEMO_PRIV, "-max-age", "3d")
    assert r.returncode == 2 and "max-age" in r.stderr
