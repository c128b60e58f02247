"""`cc-backend`: the command line, in upstream's flag syntax and execution order (spec §6.1).

    cc-backend [-config ./config.json] [-loglevel info] [-logdate] [-init] [-migrate-db|-revert-db|
               -force-db] [-optimize-db] [-add-user name:roles:password] [-del-user name] [-jwt name]
               [-init-db] [-import-job meta:data[,...]] [-apply-tags] [-server [-dev]] [-version]

Order: flags → -version → logging → -init → .env → config → -migrate-db/-revert-db/-force-db (exit
before the version check) → database (version check) → -optimize-db → users and tokens → archive
→ -init-db → -import-job → -apply-tags → -server, else "No errors, server flag not set".

Exit status: 0 success; 2 for usage, configuration, `.env` and schema-version errors (the message
names the file and field or the command to run); 1 when an action fails.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from cccommon.cliutil import GoFlagParser
from cccommon.config import ConfigError
from cccommon.logging import setup_logging

from . import __version__

log = logging.getLogger("ccbackend.main")

SQL_DB_VERSION = 11
JOB_ARCHIVE_VERSION = 3

LOGO = r"""
 _____ _           _             ____           _          _ _
/  ___| |_   _ ___| |_ ___ _ __ / ___|___   ___| | ___ __ (_) |_
| |   | | | | / __| __/ _ \ '__| |   / _ \ / __| |/ / '_ \| | __|
| |___| | |_| \__ \ ||  __/ |  | |__| (_) | (__|   <| |_) | | |_
\_____|_|\__,_|___/\__\___|_|   \____\___/ \___|_|\_\ .__/|_|\__|
                                                    |_|
"""


class Fatal(Exception):
    """Stop with a message and an exit status (2: configuration/usage, 1: failed action)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def build_parser() -> GoFlagParser:
    p = GoFlagParser(prog="cc-backend", description="ClusterCockpit job-centric web backend (Python)")
    f = p.add_flag
    f("init", action="store_true", help="set up ./var, a SQLite database, config.json and .env in the working directory")
    f("init-db", action="store_true", help="rebuild the job, tag and jobtag tables from the job archive (running jobs are lost)")
    f("sync-ldap", action="store_true", help="synchronise the hpc_user table with LDAP")
    f("server", action="store_true", help="start the HTTP server after all other actions")
    f("dev", action="store_true", help="also serve the Swagger UI (OpenAPI document) under /swagger/")
    f("gops", action="store_true", help="accepted for compatibility (Go runtime diagnostics; no effect here)")
    f("version", action="store_true", help="print version information and exit")
    f("migrate-db", action="store_true", help="migrate the database to the supported version and exit")
    f("revert-db", action="store_true", help="migrate the database down to the previous version and exit")
    f("force-db", action="store_true", help="set the database version, clear the dirty flag and exit")
    f("optimize-db", action="store_true", help="VACUUM and ANALYZE the database, then exit")
    f("apply-tags", action="store_true", help="run all job taggers on every finished job in the database")
    f("cleanup-checkpoints", action="store_true", help="clean up checkpoints of the embedded metric store and exit")
    f("logdate", action="store_true", help="add date and time to log lines")
    f("config", default="./config.json", metavar="PATH", help="config file (default ./config.json)")
    f("add-user", default="", metavar="NAME:ROLES:PASSWORD", help="add a local user, e.g. demo:admin,api:secret")
    f("del-user", default="", metavar="NAME", help="delete a user")
    f("jwt", default="", metavar="NAME", help="print a JWT for the user")
    f("import-job", default="", metavar="META:DATA[,...]", help="import finished jobs (meta.json:data.json pairs)")
    f("loglevel", default="info", metavar="LEVEL", help="debug|info|warn|err|crit (default info)")
    return p


def print_version() -> None:
    sys.stdout.write(LOGO)
    sys.stdout.write(f"Version:\t{__version__}\n")
    sys.stdout.write(f"Git hash:\t{os.environ.get('CC_BACKEND_COMMIT', 'unknown')}\n")
    sys.stdout.write(f"Build time:\t{os.environ.get('CC_BACKEND_BUILD_TIME', 'unknown')}\n")
    sys.stdout.write(f"SQL db version:\t{SQL_DB_VERSION}\n")
    sys.stdout.write(f"Job archive version:\t{JOB_ARCHIVE_VERSION}\n")
    sys.stdout.flush()


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


# ------------------------------------------------------------------------------------ the steps


async def _init(args: Any) -> None:
    from .initdir import InitError, init_workdir
    from .repository import migrate_db

    try:
        created = await init_workdir(os.getcwd(), migrate_db)
    except InitError as e:
        raise Fatal(str(e), 1) from None
    log.info("created %s", ", ".join(created))
    print(
        "Successfully setup environment!\n"
        "Please review config.json and .env and adjust it to your needs.\n"
        "Add your job-archive at ./var/job-archive."
    )


async def _schema_command(args: Any, cfg: Any) -> None:
    from . import repository

    driver, db = cfg.main.db_driver, cfg.main.db
    shown = db if driver == "sqlite3" else _redact_dsn(db)
    if args.migrate_db:
        name, fn, target = "MigrateDB", repository.migrate_db, SQL_DB_VERSION
    elif args.revert_db:
        name, fn, target = "RevertDB", repository.revert_db, SQL_DB_VERSION - 1
    else:
        name, fn, target = "ForceDB", repository.force_db, SQL_DB_VERSION
    try:
        await _maybe_await(fn(driver, db))
    except Exception as e:  # noqa: BLE001 - reported with the database named, then exit 1
        raise Fatal(f"{name} Failed: Could not {name[:-2].lower()} '{driver}' database at location '{shown}' "
                    f"to version {target}: {e}") from None
    past = {"MigrateDB": "Migrated", "RevertDB": "Reverted", "ForceDB": "Forced"}[name]
    log.info("%s Success: %s '%s' database at location '%s' to version %d.", name, past, driver, shown, target)


def _redact_dsn(dsn: str) -> str:
    """A PostgreSQL DSN without its password, for log lines."""
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}:***@{host}"
    return dsn


async def _open_repository(cfg: Any) -> Any:
    from .repository import open_repository
    from .repository.base import SchemaVersionError

    try:
        return await _maybe_await(open_repository(
                cfg.main.db_driver, cfg.main.db, options=cfg.main.db_config.model_dump(by_alias=True)
            ))
    except SchemaVersionError as e:
        raise Fatal(str(e), 2) from None


def _parse_add_user(value: str) -> tuple[str, list[str], str]:
    parts = value.split(":", 2)
    if len(parts) != 3 or not parts[0]:
        raise Fatal(
            "Add User: Could not parse supplied argument format: No changes.\n"
            "Want: <username>:[admin,support,manager,api,user]:<password>\n"
            f"Have: {value}",
            2,
        )
    return parts[0], [r for r in parts[1].split(",")], parts[2]


async def _users(args: Any, cfg: Any, env: Any, repo: Any) -> None:
    if cfg.main.disable_authentication:
        if args.add_user or args.del_user:
            raise Fatal(
                "Error: Arguments '--add-user' and '--del-user' can only be used if authentication is "
                "enabled. No changes, exited.",
                2,
            )
        return
    if cfg.auth is None:
        log.info("no 'auth' section: issued tokens never expire, LDAP and OIDC are off")
    from .auth.users import UserError, create_user

    if args.add_user:
        name, roles, password = _parse_add_user(args.add_user)
        try:
            await create_user(repo, name, password, roles)
        except UserError as e:
            raise Fatal(
                f"Add User: Could not add new user authentication for '{name}' and roles "
                f"'{','.join(roles)}'.\nError: {e}"
            ) from None
        log.info("Add User: Added new user '%s' with roles '%s'.", name, ",".join(roles))
    if args.del_user:
        n = await repo.delete_user(args.del_user)
        if not n:
            raise Fatal(f"Delete User: Could not delete user '{args.del_user}' from DB.\nError: user not found")
        log.info("Delete User: Deleted user '%s' from DB.", args.del_user)
    if args.sync_ldap:
        raise Fatal("Sync LDAP: LDAP synchronisation is not available in this build. No changes, exited.")
    if args.jwt:
        user = await repo.get_user(args.jwt)
        if user is None:
            raise Fatal(f"JWT: Could not get supplied user '{args.jwt}' from DB. No changes, exited.")
        if "api" not in user.roles:
            log.warning(
                "JWT: User '%s' does not have the role 'api'. REST API endpoints will return error!", user.username
            )
        try:
            token = issue_jwt(user.username, user.roles, env, cfg)
        except Exception as e:  # noqa: BLE001 - key or max-age problems, reported with the user named
            raise Fatal(f"JWT: User '{user.username}' found in DB, but failed to provide JWT.\nError: {e}") from None
        print(f"JWT: Successfully generated JWT for user '{user.username}': {token}", flush=True)


def issue_jwt(username: str, roles: list[str], env: Any, cfg: Any) -> str:
    """A token signed with JWT_PRIVATE_KEY, with `exp` from `auth.jwts.max-age` when set."""
    from cccommon import jwt as ccjwt

    from .auth.config import jwt_max_age_seconds
    from .auth.tokens import TokenAuthenticator

    if not env.jwt_private_key:
        raise ValueError("JWT_PRIVATE_KEY is not set in .env or the environment")
    private = ccjwt.load_private_key(env.jwt_private_key)
    jwts = cfg.auth.jwts if cfg.auth is not None else None
    max_age = jwt_max_age_seconds(jwts.max_age if jwts is not None else None)
    return TokenAuthenticator(private.public_key(), private, max_age=max_age).issue(username, roles)


async def _open_archive(cfg: Any) -> tuple[Any, Any]:
    from .archive import open_archive
    from .clusters import ClusterRegistry

    try:
        archive = await asyncio.to_thread(open_archive, cfg.archive)
        registry = await asyncio.to_thread(ClusterRegistry.from_archive, archive)
    except Exception as e:  # noqa: BLE001
        raise Fatal(f"Init: Failed to initialize archive.\nError: {e}") from None
    return archive, registry


async def _run(args: Any) -> int:
    if args.init:
        await _init(args)
        return 0
    if args.gops:
        log.debug("-gops has no Python equivalent; ignored")

    from .config import load_backend_config
    from .env import EnvError, load_env

    try:
        env = await asyncio.to_thread(load_env, "./.env")
    except EnvError as e:
        raise Fatal(f"Could not parse existing .env file at location './.env'. Application startup failed, "
                    f"exited.\nError: {e}", 2) from None
    try:
        cfg = await asyncio.to_thread(load_backend_config, args.config)
    except ConfigError as e:
        raise Fatal(str(e), 2) from None

    if args.migrate_db or args.revert_db or args.force_db:
        await _schema_command(args, cfg)
        return 0

    repo = await _open_repository(cfg)
    try:
        if args.optimize_db:
            await repo.optimize()
            log.info("OptimizeDB Success: VACUUM and ANALYZE done on '%s'.", cfg.main.db)
            return 0
        await _users(args, cfg, env, repo)
        need_archive = args.init_db or args.import_job or args.apply_tags
        archive = registry = None
        if need_archive:
            archive, registry = await _open_archive(cfg)
        if args.init_db:
            from .importer import init_db

            await init_db(repo, archive, registry, progress=True)
            log.info("Init DB: Sucessfully re-initialized repository DB.")
        if args.import_job:
            from .importer import ImportError_, import_jobs

            try:
                await import_jobs(repo, archive, registry, args.import_job, validate=cfg.main.validate_json)
            except ImportError_ as e:
                raise Fatal(f"Import Job: Job import failed.\nError: {e}") from None
            log.info("Import Job: Imported Job '%s' into DB.", args.import_job)
        if args.apply_tags:
            await _apply_tags(cfg, repo, archive, registry)
        if args.cleanup_checkpoints:
            log.warning("-cleanup-checkpoints: the embedded metric store is not part of this backend; nothing to do")
        if not args.server:
            log.info("No errors, server flag not set. Exiting cc-backend.")
            return 0
    finally:
        await repo.close()

    from .server import serve

    await serve(cfg, env, dev=args.dev)
    return 0


async def _apply_tags(cfg: Any, repo: Any, archive: Any, registry: Any) -> None:
    try:
        from .tagger import apply_tags  # type: ignore[attr-defined]
    except ImportError:
        raise Fatal("Running job taggers: the tagger is not available in this build") from None
    await _maybe_await(apply_tags(cfg, repo, archive, registry))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cc-backend` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.version:
        print_version()
        return 0
    setup_logging(args.loglevel, args.logdate)
    try:
        return asyncio.run(_run(args))
    except Fatal as e:
        log.critical("%s", e) if e.status == 2 else log.error("%s", e)
        return e.status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
