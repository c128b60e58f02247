"""Replays recorded output of a site program, for the collector tests (tests/data/collector/bin).

`replay.py <program> <args…>` prints `outputs/<program>/<key>.<n>.txt`, where `key` is derived
from the arguments (the queried device, node type, …) and `n` is the number of earlier calls with
the same key (the highest recorded snapshot is repeated). Exit status: `<key>.rc` if present,
else 0. State lives in `$FAKE_STATE_DIR` (without it every call replays snapshot 0): `calls.log`
records each command line, `<program>.fail` makes the program fail. `$FAKE_OUTPUT_DIR` replaces
the directory of recorded outputs.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def key_of(prog: str, args: list[str]) -> str:
    if prog == "lctl":
        if args[:1] != ["get_param"] or len(args) != 2:
            sys.exit(f"lctl: unexpected arguments {args}")
        return "all" if args[1] == "llite.*.stats" else args[1].split(".")[1]
    if prog == "smartctl":
        return "scan" if "--scan" in args else os.path.basename(args[-1])
    if prog == "beegfs-ctl":
        for a in args:
            if a.startswith("--nodetype="):
                return a.split("=", 1)[1]
        sys.exit("beegfs-ctl: --nodetype missing")
    if prog == "mmpmon":
        if args != ["-p", "-s"] or sys.stdin.read() != "once fs_io_s\n":
            sys.exit("mmpmon: unexpected command")
    if prog == "ipmi-sensors" and args != ["--comma-separated-output", "--sdr-cache-recreate"]:
        sys.exit("ipmi-sensors: unexpected arguments")
    if prog == "ipmitool" and args != ["sensor"]:
        sys.exit("ipmitool: usage")
    return "out"


def main() -> None:
    prog, args = sys.argv[1], sys.argv[2:]
    state = os.environ.get("FAKE_STATE_DIR")
    if state:
        with open(os.path.join(state, "calls.log"), "a") as f:
            f.write(" ".join([prog, *args]) + "\n")
        if os.path.exists(os.path.join(state, f"{prog}.fail")):
            sys.exit(f"{prog}: simulated failure")
    key = key_of(prog, args)
    outdir = os.path.join(os.environ.get("FAKE_OUTPUT_DIR") or os.path.join(HERE, "..", "outputs"), prog)
    n = 0
    if state:
        counter = os.path.join(state, f"{prog}.{key.replace('/', '_')}.count")
        try:
            with open(counter) as f:
                n = int(f.read())
        except OSError:
            n = 0
        with open(counter, "w") as f:
            f.write(str(n + 1))
    snaps = sorted(
        int(name[len(key) + 1 : -4])
        for name in os.listdir(outdir)
        if name.startswith(key + ".") and name.endswith(".txt") and name[len(key) + 1 : -4].isdigit()
    )
    usable = [s for s in snaps if s <= n] or snaps[:1]
    if not usable:
        sys.exit(f"{prog}: no recorded output for {key}")
    with open(os.path.join(outdir, f"{key}.{usable[-1]}.txt")) as f:
        sys.stdout.write(f.read())
    try:
        with open(os.path.join(outdir, f"{key}.rc")) as f:
            sys.exit(int(f.read()))
    except OSError:
        pass


if __name__ == "__main__":
    main()
