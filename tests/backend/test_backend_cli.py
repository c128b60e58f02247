"""`cc-backend` end to end: the installed console script run in a temporary working directory.

Covers the guide's command sequences (-init, -migrate-db, `-init-db -add-user demo:admin:demo`,
`-add-user myapiuser:admin,api:<pw>` + `-jwt myapiuser`), -import-job with upstream's importer
fixtures and their golden durations, -version, and the exit status 2 paths (bad config, missing
.env, outdated database, unknown flag).
"""

from __future__ import annotations

import base64
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from cccommon import jwt as ccjwt
from tests.conftest import VENV_BIN, free_port, upstream_fixture, wait_port

EXE = VENV_BIN / "cc-backend"


def run(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def env_value(path: Path, key: str) -> str:
    for line in path.read_text().splitlines():
        if line.startswith(key + "="):
            return line.split("=", 1)[1].strip().strip('"')
    raise KeyError(key)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory prepared with `cc-backend -init` (fresh keys, job.db v11, empty archive)."""
    r = run(tmp_path, "-init")
    assert r.returncode == 0, r.stderr
    return tmp_path


def copy_archive(src: Path, dst: Path) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)


def jobs(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT job_id, cluster, subcluster, start_time, duration, monitoring_status, hpc_user, "
            "footprint, energy_footprint, energy FROM job ORDER BY job_id"
        ).fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------------------- basics


def test_version() -> None:
    r = subprocess.run([str(EXE), "-version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert "SQL db version:\t11" in r.stdout and "Job archive version:\t3" in r.stdout
    assert "Version:\t" in r.stdout


def test_unknown_flag_exits_2(tmp_path: Path) -> None:
    r = run(tmp_path, "-bogus")
    assert r.returncode == 2 and "flag provided but not defined: -bogus" in r.stderr


def test_init_writes_a_working_directory(workdir: Path) -> None:
    cfg = orjson.loads((workdir / "config.json").read_bytes())
    assert cfg["main"]["addr"] == "127.0.0.1:8080" and cfg["main"]["emission-constant"] == 317
    assert cfg["auth"]["jwts"]["max-age"] == "2000h" and cfg["archive"]["path"] == "./var/job-archive"
    env = workdir / ".env"
    assert env.stat().st_mode & 0o077 == 0
    pub, priv = env_value(env, "JWT_PUBLIC_KEY"), env_value(env, "JWT_PRIVATE_KEY")
    assert pub != "kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0="  # never the demo key
    assert ccjwt.public_key_b64(ccjwt.load_private_key(priv)) == pub
    assert len(base64.b64decode(env_value(env, "SESSION_KEY"))) == 32
    assert (workdir / "var" / "job-archive" / "version.txt").read_text().strip() == "3"
    con = sqlite3.connect(workdir / "var" / "job.db")
    assert con.execute("SELECT version, dirty FROM schema_migrations").fetchall() == [(11, 0)]
    con.close()
    # a second -init refuses and changes nothing
    before = (workdir / ".env").read_text()
    r = run(workdir, "-init")
    assert r.returncode == 1 and "already exists" in r.stderr
    assert (workdir / ".env").read_text() == before


def test_guide_demo_sequence(tmp_path: Path) -> None:
    """Hands-on demo: copy env template and a config, `mkdir var`, -migrate-db, -init-db -add-user."""
    shutil.copy(upstream_fixture("cc-backend/configs/env-template.txt"), tmp_path / ".env")
    (tmp_path / "config.json").write_text('{"main": {"addr": "127.0.0.1:8080"}}')
    (tmp_path / "var").mkdir()
    r = run(tmp_path, "-migrate-db")
    assert r.returncode == 0, r.stderr
    assert "MigrateDB Success" in r.stderr and (tmp_path / "var" / "job.db").exists()
    copy_archive(upstream_fixture("cc-backend/pkg/archive/testdata/archive"), tmp_path / "var" / "job-archive")
    r = run(tmp_path, "-init-db", "-add-user", "demo:admin:demo")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    user = next(i for i, x in enumerate(lines) if '<6>[INFO]' in x and 'new user "demo" created (roles: ["admin"], auth-source: 0' in x)
    build = next(i for i, x in enumerate(lines) if x.endswith("Building job table..."))
    total = next(i for i, x in enumerate(lines) if "A total of 2 jobs have been registered in" in x)
    assert user < build < total
    assert "demo key" in r.stderr  # the template's keys are flagged
    rows = jobs(tmp_path / "var" / "job.db")
    assert [(r[0], r[1], r[2], r[3], r[5], r[6]) for r in rows] == [
        (1403244, "emmy", "haswell", 1608923076, 3, "emmyUser6"),
        (1404397, "emmy", "haswell", 1609300556, 3, "emmyUser6"),
    ]
    assert "No errors, server flag not set" in r.stderr


def test_api_user_and_jwt(workdir: Path) -> None:
    r = run(workdir, "-add-user", "myapiuser:admin,api:s3cr:et")
    assert r.returncode == 0, r.stderr
    r = run(workdir, "-jwt", "myapiuser")
    assert r.returncode == 0, r.stderr
    prefix = "JWT: Successfully generated JWT for user 'myapiuser': "
    line = next(x for x in r.stdout.splitlines() if x.startswith(prefix))
    claims = ccjwt.verify(line[len(prefix) :], env_value(workdir / ".env", "JWT_PUBLIC_KEY"))
    assert claims["sub"] == "myapiuser" and claims["roles"] == ["admin", "api"]
    assert claims["exp"] - claims["iat"] == 2000 * 3600
    con = sqlite3.connect(workdir / "var" / "job.db")
    (pw,) = con.execute("SELECT password FROM hpc_user WHERE username = 'myapiuser'").fetchone()
    con.close()
    assert pw.startswith("$2")  # bcrypt; the password kept its ':'
    import bcrypt

    assert bcrypt.checkpw(b"s3cr:et", pw.encode())
    # a user without the api role still gets a token, with upstream's warning
    assert run(workdir, "-add-user", "plain:user:pw").returncode == 0
    r = run(workdir, "-jwt", "plain")
    assert r.returncode == 0 and "does not have the role 'api'" in r.stderr
    # errors: existing user, unknown user, malformed argument
    r = run(workdir, "-add-user", "myapiuser:admin:x")
    assert r.returncode == 1 and "already exists" in r.stderr
    assert run(workdir, "-jwt", "nobody").returncode == 1
    r = run(workdir, "-add-user", "nocolons")
    assert r.returncode == 2 and "Want: <username>:[admin,support,manager,api,user]:<password>" in r.stderr
    r = run(workdir, "-del-user", "plain")
    assert r.returncode == 0 and run(workdir, "-jwt", "plain").returncode == 1


def test_import_job_golden(workdir: Path) -> None:
    td = upstream_fixture("cc-backend/internal/importer/testdata")
    (workdir / "var" / "job-archive" / "fritz").mkdir()
    shutil.copy(td / "cluster-fritz.json", workdir / "var" / "job-archive" / "fritz" / "cluster.json")
    pairs = ",".join(f"{td}/meta-{n}.input:{td}/data-{n}.json" for n in ("fritzMinimal", "fritzError"))
    r = run(workdir, "-import-job", pairs)
    assert r.returncode == 0, r.stderr
    assert "successfully imported a new job (jobId: 398764, cluster: fritz" in r.stderr
    got = {(row[0], row[1], row[3]): row for row in jobs(workdir / "var" / "job.db")}
    for name in ("fritzMinimal", "fritzError"):
        golden = orjson.loads((td / f"{name}-golden.json").read_bytes())
        row = got[(golden["jobId"], golden["cluster"], golden["startTime"])]
        assert row[4] == golden["duration"] and row[5] == 3
        fp = orjson.loads(row[7])
        assert set(fp) == {"cpu_load_avg", "mem_used_avg", "flops_any_avg", "mem_bw_avg"}
        arch = workdir / "var/job-archive/fritz/398" / str(golden["jobId"] % 1000) / str(golden["startTime"])
        meta = orjson.loads((arch / "meta.json").read_bytes())
        assert meta["monitoringStatus"] == 3 and meta["footprint"] == fp
        assert (arch / "data.json.gz").exists() or (arch / "data.json").exists()
    assert orjson.loads(got[(398764, "fritz", 1675954353)][7])["cpu_load_avg"] == 31.64
    # importing again fails: the job is in the database
    r = run(workdir, "-import-job", f"{td}/meta-fritzMinimal.input:{td}/data-fritzMinimal.json")
    assert r.returncode == 1 and "already in the database" in r.stderr


def test_import_job_rejects_unknown_keys(workdir: Path, tmp_path: Path) -> None:
    td = upstream_fixture("cc-backend/internal/importer/testdata")
    (workdir / "var" / "job-archive" / "fritz").mkdir()
    shutil.copy(td / "cluster-fritz.json", workdir / "var" / "job-archive" / "fritz" / "cluster.json")
    meta = orjson.loads((td / "meta-fritzMinimal.input").read_bytes())
    meta["stopTime"] = meta["startTime"] + meta["duration"]
    bad = workdir / "meta-legacy.json"
    bad.write_bytes(orjson.dumps(meta))
    r = run(workdir, "-import-job", f"{bad}:{td}/data-fritzMinimal.json")
    assert r.returncode == 1 and 'unknown field "stopTime"' in r.stderr
    r = run(workdir, "-import-job", "only-one-file.json")
    assert r.returncode == 1 and "invalid import flag format" in r.stderr
    assert jobs(workdir / "var" / "job.db") == []


# --------------------------------------------------------------------------------- exit status 2


def test_bad_config_exits_2_naming_file_and_field(workdir: Path) -> None:
    (workdir / "config.json").write_text('{"main": {"addr": "127.0.0.1:8080", "short-running-jobs-duration": "x"}}')
    r = run(workdir)
    assert r.returncode == 2
    assert "config.json: field 'main.short-running-jobs-duration'" in r.stderr
    r = run(workdir, "-config", "other.json")
    assert r.returncode == 2 and "other.json: file not found" in r.stderr


def test_missing_env_exits_2(workdir: Path) -> None:
    (workdir / ".env").unlink()
    r = run(workdir, "-migrate-db")
    assert r.returncode == 2 and "./.env" in r.stderr and "-init" in r.stderr


def test_outdated_database_exits_2_until_migrated(tmp_path: Path) -> None:
    src = upstream_fixture("cc-backend/internal/repository/testdata/job.db")
    (tmp_path / "var").mkdir()
    for f in src.parent.glob("job.db*"):
        shutil.copy(f, tmp_path / "var" / f.name)
    shutil.copy(upstream_fixture("cc-backend/configs/env-template.txt"), tmp_path / ".env")
    (tmp_path / "config.json").write_text('{"main": {"addr": "127.0.0.1:8080"}, "auth": {"jwts": {}}}')
    r = run(tmp_path, "-jwt", "demo")
    assert r.returncode == 2 and "-migrate-db" in r.stderr
    assert run(tmp_path, "-migrate-db").returncode == 0
    r = run(tmp_path, "-jwt", "demo")
    assert r.returncode == 0, r.stderr
    token = r.stdout.split(": ", 1)[1].strip().rsplit(" ", 1)[-1]
    claims = ccjwt.verify(token, "kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0=")
    assert claims["sub"] == "demo" and "exp" not in claims  # no max-age: tokens never expire


def test_loglevel_warn_hides_info(workdir: Path) -> None:
    r = run(workdir, "-loglevel", "warn", "-logdate")
    assert r.returncode == 0 and "[INFO]" not in r.stderr
    r = run(workdir, "--loglevel=debug")
    assert r.returncode == 0 and "No errors, server flag not set" in r.stderr


def test_server_flag_starts_and_stops_on_sigint(workdir: Path) -> None:
    port = free_port()
    cfg = orjson.loads((workdir / "config.json").read_bytes())
    cfg["main"]["addr"] = f"127.0.0.1:{port}"
    (workdir / "config.json").write_bytes(orjson.dumps(cfg))
    proc = subprocess.Popen([str(EXE), "-server", "-dev"], cwd=workdir, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_port("127.0.0.1", port, 30), "server did not listen"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"HTTP server listening at 127.0.0.1:{port}" in err
