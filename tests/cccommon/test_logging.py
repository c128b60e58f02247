"""Log lines follow cc-lib's syslog-prefixed format so journald classifies them."""

import io
import logging
import re

import pytest

from cccommon.logging import get_logger, parse_level, setup_logging


@pytest.fixture(autouse=True)
def _restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(buf: io.StringIO) -> list[str]:
    return buf.getvalue().splitlines()


def test_prefixes_and_component():
    buf = io.StringIO()
    setup_logging("debug", stream=buf, component="metricstore")
    log = get_logger("checkpoint")
    log.debug("d")
    log.info("Checkpoint done")
    log.warning("w")
    log.error("e")
    log.critical("c")
    logging.getLogger().info("root line")
    assert lines(buf) == [
        "<7>[DEBUG] [checkpoint] d",
        "<6>[INFO] [checkpoint] Checkpoint done",
        "<4>[WARNING] [checkpoint] w",
        "<3>[ERROR] [checkpoint] e",
        "<2>[CRITICAL] [checkpoint] c",
        "<6>[INFO] [metricstore] root line",
    ]


def test_root_without_component():
    buf = io.StringIO()
    setup_logging("info", stream=buf)
    logging.getLogger().warning("plain")
    assert lines(buf) == ["<4>[WARNING] plain"]


@pytest.mark.parametrize(
    "level,visible",
    [
        ("debug", 5),
        ("info", 4),
        ("warn", 3),
        ("warning", 3),
        ("err", 2),
        ("error", 2),
        ("fatal", 2),
        ("crit", 1),
        ("critical", 1),
        ("INFO", 4),
    ],
)
def test_levels(level, visible):
    buf = io.StringIO()
    setup_logging(level, stream=buf)
    log = get_logger("x")
    for fn in (log.debug, log.info, log.warning, log.error, log.critical):
        fn("m")
    assert len(lines(buf)) == visible


def test_invalid_level_falls_back_to_debug_like_upstream():
    buf = io.StringIO()
    setup_logging("verbose", stream=buf)
    get_logger("x").debug("shown")
    out = lines(buf)
    assert out[0].startswith("<3>[ERROR]") and "Invalid loglevel" in out[0]
    assert out[1] == "<7>[DEBUG] [x] shown"
    with pytest.raises(ValueError):
        parse_level("verbose")


def test_logdate_and_idempotent_setup():
    buf1, buf2 = io.StringIO(), io.StringIO()
    setup_logging("info", stream=buf1)
    setup_logging("info", logdate=True, stream=buf2)
    get_logger("api").info("hello")
    assert buf1.getvalue() == ""
    assert re.fullmatch(r"<6>\[INFO\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[api\] hello\n", buf2.getvalue())


def test_exception_text_included():
    buf = io.StringIO()
    setup_logging("info", stream=buf)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("x").exception("failed")
    out = buf.getvalue()
    assert out.startswith("<3>[ERROR] [x] failed\nTraceback") and "RuntimeError: boom" in out


def test_module_name_does_not_shadow_stdlib():
    import cccommon.logging as cl

    assert cl.__name__ == "cccommon.logging"
    assert logging.getLogger is not None and logging.__name__ == "logging"
