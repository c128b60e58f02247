"""Go flag syntax: upstream units pass `--config x`, guides use `-loglevel debug`, `-dev`."""

import pytest

from cccommon.cliutil import GoFlagParser, fail, parse_go_bool


def make() -> GoFlagParser:
    p = GoFlagParser(prog="cc-test", description="test")
    p.add_flag("config", default="./config.json", help="config file")
    p.add_flag("loglevel", default="warn")
    p.add_flag("logdate", action="store_true")
    p.add_flag("dev", action="store_true")
    p.add_flag("version", default=False)
    p.add_flag("add-user", default="")
    p.add_flag("workers", type=int, default=4)
    return p


@pytest.mark.parametrize(
    "argv",
    [
        ["-config", "x.json"],
        ["--config", "x.json"],
        ["-config=x.json"],
        ["--config=x.json"],
    ],
)
def test_value_flag_spellings(argv):
    assert make().parse_args(argv).config == "x.json"


def test_defaults():
    a = make().parse_args([])
    assert (a.config, a.loglevel, a.logdate, a.dev, a.version, a.add_user, a.workers) == (
        "./config.json",
        "warn",
        False,
        False,
        False,
        "",
        4,
    )


def test_bool_flags():
    a = make().parse_args(["-dev", "--logdate", "-version", "-workers=8", "-add-user", "demo:admin:demo"])
    assert a.dev and a.logdate and a.version and a.workers == 8 and a.add_user == "demo:admin:demo"
    a = make().parse_args(["-dev=false", "--logdate=true", "-version=0"])
    assert (a.dev, a.logdate, a.version) == (False, True, False)


def test_value_with_equals_and_dash():
    a = make().parse_args(["-add-user=u:api:pa=ss", "-loglevel", "debug"])
    assert a.add_user == "u:api:pa=ss" and a.loglevel == "debug"


def test_no_abbreviation_and_unknown(capsys):
    with pytest.raises(SystemExit) as e:
        make().parse_args(["-conf", "x"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        make().parse_args(["-dev=maybe"])
    assert e.value.code == 2
    assert "invalid boolean" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["-h", "--help", "-help"])
def test_help(flag, capsys):
    with pytest.raises(SystemExit) as e:
        make().parse_args([flag])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "-config" in out and "-loglevel" in out


def test_fail(capsys):
    with pytest.raises(SystemExit) as e:
        fail("bad thing", prog="cc-metric-store")
    assert e.value.code == 2
    assert capsys.readouterr().err == "cc-metric-store: bad thing\n"
    with pytest.raises(SystemExit):
        make().fail("oops")
    assert capsys.readouterr().err == "cc-test: oops\n"


def test_parse_go_bool():
    assert parse_go_bool("T") and parse_go_bool("1") and not parse_go_bool("False")
    with pytest.raises(ValueError):
        parse_go_bool("yes")


def test_values_starting_with_dash():
    a = make().parse_args(["-workers", "-1", "-config", "-odd.json", "-loglevel", "info"])
    assert a.workers == -1 and a.config == "-odd.json" and a.loglevel == "info"


def test_positionals_still_work():
    p = make()
    p.add_argument("files", nargs="*")
    a = p.parse_args(["-dev", "-config", "c", "a.json", "b.json"])
    assert a.files == ["a.json", "b.json"] and a.dev and a.config == "c"
