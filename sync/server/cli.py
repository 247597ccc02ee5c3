"""The ``liveedit server`` command line: run the reference server and administer it.

Subcommands (each takes ``--db PATH``): ``serve``, ``user add|list|disable|enable|set-role|
passwd``, ``import FILE.json``, ``demo-data --customers N``, ``backup OUT`` (an online,
consistent copy of the SQLite database while the server runs), ``migrate``, and ``copy
--from PATH --to URL`` (no ``--db``: a SQLite server's data into a new Postgres database).
``--db`` is a SQLite file path, or a ``postgresql://`` URL (every command but ``backup``,
which names pg_dump instead).

Exit codes: 0 success; 1 the operation failed (unknown or duplicate user, unusable
database, …); 2 usage: a bad command line, or an input file or password that cannot be
used. Every error is one line on stderr, ``liveedit server: error: <message>``; no
traceback for anything the operator can fix. This is the only module of ``sync.server``
that prints.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import json
import logging
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .config import ServerConfig
from .errors import ConfigError, ImportFailed, ServerError

if TYPE_CHECKING:
    from .auth import AuthService

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "main"]

PROG = "liveedit server"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
MAX_DEMO_CUSTOMERS = 1_000_000
_LOG_LEVELS = ("debug", "info", "warning", "error")

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int]


def main(argv: list[str] | None = None) -> int:
    """Run one ``liveedit server`` command; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    handler = cast(Handler, args.handler)
    try:
        if isinstance(getattr(args, "db", None), str) and handler is _cmd_backup:
            raise ConfigError("back up a Postgres database with pg_dump or pg_basebackup "
                              "(docs/deploy.md, \"Postgres backups\")")
        if isinstance(getattr(args, "db", None), str) and handler not in _POSTGRES_READY:
            raise ConfigError(
                f"'{args.command}' does not run on Postgres yet (issue 12); "
                "give --db the path of a SQLite file"
            )
        return handler(args)
    except (ConfigError, ImportFailed) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ServerError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except OSError as exc:
        return _fail(_os_error_text(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return 130


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _os_error_text(exc: OSError) -> str:
    what = exc.strerror or str(exc)
    return f"{exc.filename}: {what}" if exc.filename else what


# -- argument parsing ------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", required=True, type=_database, metavar="PATH|URL",
                        help="the server's SQLite database file (created if missing), or a "
                        "postgresql:// URL")
    parser = argparse.ArgumentParser(
        prog=PROG, description="Run and administer the Live Edit reference server.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands, common)
    _add_user(commands, common)
    imp = commands.add_parser("import", parents=[common], help="import customers from JSON")
    imp.add_argument("file", type=Path, metavar="FILE.json",
                     help="a JSON array of customers in the seed-000 shape")
    imp.set_defaults(handler=_cmd_import)
    demo = commands.add_parser("demo-data", parents=[common],
                               help="generate and import fake customers (demo only)")
    demo.add_argument("--customers", required=True, type=_demo_count, metavar="N",
                      help=f"how many customers, 1 to {MAX_DEMO_CUSTOMERS:,}")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(handler=_cmd_demo_data)
    backup = commands.add_parser(
        "backup", parents=[common],
        help="copy the database to OUT, consistently, even while the server runs",
    )
    backup.add_argument("out", type=Path, metavar="OUT", help="the backup file (must not exist)")
    backup.set_defaults(handler=_cmd_backup)
    migrate = commands.add_parser(
        "migrate", parents=[common],
        help="bring the database schema up to date (serve does it too, at start)",
    )
    migrate.set_defaults(handler=_cmd_migrate)
    copy = commands.add_parser(
        "copy", help="copy a SQLite server's data into a new Postgres database",
    )
    copy.add_argument("--from", dest="source", required=True, type=Path, metavar="PATH",
                      help="the SQLite database (its server must be stopped)")
    copy.add_argument("--to", dest="target", required=True, metavar="URL",
                      help="an empty Postgres database, postgresql://…")
    copy.set_defaults(handler=_cmd_copy)
    return parser


def _add_serve(commands: Any, common: argparse.ArgumentParser) -> None:
    serve = commands.add_parser("serve", parents=[common], help="run the server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    serve.add_argument("--tls-cert", type=Path, metavar="FILE", help="TLS certificate (PEM)")
    serve.add_argument("--tls-key", type=Path, metavar="FILE", help="TLS private key (PEM)")
    serve.add_argument("--access-token-ttl", type=float, metavar="S",
                       help="access token lifetime in seconds (900)")
    serve.add_argument("--notification-ttl", type=float, metavar="S",
                       help="how long notifications are kept, in seconds (86400)")
    for name, (kind, help_text) in _TUNABLES.items():
        if name in {"access_token_ttl", "notification_ttl"}:
            continue
        serve.add_argument(f"--{name.replace('_', '-')}", type=kind, metavar="N", help=help_text)
    serve.add_argument("--metrics-port", type=int, metavar="N",
                       help="serve Prometheus metrics on this port (0 picks one); off if unset. "
                       "Keep it private: never behind the public load balancer")
    serve.add_argument("--metrics-host", default="127.0.0.1",
                       help="address of the metrics listener (127.0.0.1)")
    serve.add_argument("--node-id", default="", metavar="NAME",
                       help="this node's name in a cluster (Postgres; logged with each update)")
    serve.add_argument("--log-level", choices=_LOG_LEVELS, default="info")
    serve.set_defaults(handler=_cmd_serve)


def _add_user(commands: Any, common: argparse.ArgumentParser) -> None:
    user = commands.add_parser("user", help="manage accounts")
    actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", parents=[common], help="create an account")
    add.add_argument("name")
    _role_options(add)
    _password_option(add)
    add.set_defaults(handler=_cmd_user_add)
    listing = actions.add_parser("list", parents=[common], help="list accounts")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_cmd_user_list)
    for action, disabled in (("disable", True), ("enable", False)):
        toggle = actions.add_parser(action, parents=[common], help=f"{action} an account")
        toggle.add_argument("name")
        toggle.set_defaults(handler=_cmd_user_disable, disabled=disabled)
    set_role = actions.add_parser("set-role", parents=[common], help="change a role")
    set_role.add_argument("name")
    _role_options(set_role)
    set_role.set_defaults(handler=_cmd_user_set_role)
    passwd = actions.add_parser("passwd", parents=[common], help="set a new password")
    passwd.add_argument("name")
    _password_option(passwd)
    passwd.set_defaults(handler=_cmd_user_passwd)


def _role_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", required=True, choices=("rep", "customer"))
    parser.add_argument("--customer", type=_customer_id, metavar="UUID",
                        help="the customer's id (role customer only)")


def _password_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of stdin")


def _database(text: str) -> Path | str:
    """``--db``: a Postgres URL stays text (a Path would fold its ``//``), else a path."""
    from .storage import is_postgres_url

    return text.strip() if is_postgres_url(text) else Path(text)


def _customer_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a UUID") from None


def _demo_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= count <= MAX_DEMO_CUSTOMERS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_DEMO_CUSTOMERS:,}")
    return count


#: Server settings the command line can change: name → (type, help). Defaults: ServerConfig.
_TUNABLES: dict[str, tuple[type, str]] = {
    "access_token_ttl": (float, "access token lifetime, seconds"),
    "notification_ttl": (float, "how long notifications are kept, seconds"),
    "auth_timeout": (float, "seconds a new connection has to authenticate (5)"),
    "session_grace": (float, "seconds a dropped session keeps its subscriptions (300)"),
    "heartbeat_interval": (float, "heartbeat interval told to clients, seconds (15)"),
    "idle_timeout": (float, "close connections silent this long, seconds (45)"),
    "max_message_size": (int, "largest message accepted, bytes (1048576)"),
    "max_subscriptions": (int, "documents per connection (1000)"),
    "rate_limit": (float, "sustained messages per second per connection (200)"),
    "rate_burst": (int, "burst of messages per connection (2000)"),
    "room_idle_timeout": (float, "evict a document unused this long, seconds (60)"),
    "max_loaded_rooms": (int, "documents kept in memory at most; idle ones go first (10000)"),
    "max_authenticating": (int, "refuse new connections while this many authenticate (256)"),
    "max_connections": (int, "refuse new connections while this many are open (10000)"),
    "busy_retry_after": (float, "a refused client is told to retry in S to 2 S seconds (2)"),
}


# -- commands --------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    options: dict[str, Any] = {
        "db_path": args.db, "host": args.host, "port": args.port,
        "tls_cert": args.tls_cert, "tls_key": args.tls_key,
        "metrics_port": args.metrics_port, "metrics_host": args.metrics_host,
        "node_id": args.node_id,
    }
    for name in _TUNABLES:
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    config = ServerConfig(**options)
    serve = cast(
        Callable[[ServerConfig, Callable[[str], None], Callable[[str], None]], int],
        _lazy("sync.server.app", "serve"),
    )
    return serve(
        config,
        lambda url: print(f"listening on {url}", flush=True),
        lambda url: print(f"metrics on {url}", flush=True),
    )


def _cmd_user_add(args: argparse.Namespace) -> int:
    password = _read_password(args.password_stdin, confirm=True)
    with _auth(args) as auth:
        user = auth.add_user(args.name, password, args.role, args.customer)
    print(f"added {user.role} {user.username!r}" + _customer_suffix(user.customer_id))
    return EXIT_OK


def _cmd_user_list(args: argparse.Namespace) -> int:
    with _auth(args) as auth:
        users = auth.list_users()
    if args.json:
        print(json.dumps([
            {"username": u.username, "role": u.role.value, "customer_id": u.customer_id,
             "disabled": u.disabled}
            for u in users
        ], indent=2))
        return EXIT_OK
    if not users:
        print("no users")
    width = max((len(u.username) for u in users), default=0)
    for u in users:
        status = "disabled" if u.disabled else "active"
        print(f"{u.username:<{width}}  {u.role.value:<8}  {status:<8}  {u.customer_id or '-'}")
    return EXIT_OK


def _cmd_user_disable(args: argparse.Namespace) -> int:
    with _auth(args) as auth:
        auth.set_disabled(args.name, args.disabled)
    print(f"{'disabled' if args.disabled else 'enabled'} user {args.name!r}")
    return EXIT_OK


def _cmd_user_set_role(args: argparse.Namespace) -> int:
    with _auth(args) as auth:
        user = auth.set_role(args.name, args.role, args.customer)
    print(f"{user.username!r} is now a {user.role}" + _customer_suffix(user.customer_id))
    return EXIT_OK


def _cmd_user_passwd(args: argparse.Namespace) -> int:
    password = _read_password(args.password_stdin, confirm=True)
    with _auth(args) as auth:
        auth.set_password(args.name, password)
    print(f"changed the password of {args.name!r}; its sessions are signed out")
    return EXIT_OK


def _cmd_import(args: argparse.Namespace) -> int:
    records = _read_customers_file(args.file)
    count = _import(args.db, records)
    print(f"imported {count} customers")
    return EXIT_OK


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from .demo_data import generate_customers

    count = _import(args.db, generate_customers(args.customers, args.seed))
    print(f"imported {count} customers")
    return EXIT_OK


def _cmd_backup(args: argparse.Namespace) -> int:
    from .storage.sqlite.backup import backup

    result = backup(args.db, args.out)
    print(f"backed up {args.db} to {result.path}: {result.updates:,} updates (last seq "
          f"{result.last_seq:,}), {result.users:,} accounts, {result.size:,} bytes in "
          f"{result.seconds:.2f} s")
    return EXIT_OK


def _cmd_migrate(args: argparse.Namespace) -> int:
    if isinstance(args.db, str):
        import asyncio

        from .storage.postgres.schema import migrate_database

        ran, version = asyncio.run(migrate_database(args.db))
    else:
        from .storage.sqlite.migrate import migrate_file

        ran, version = migrate_file(args.db)
    state = f"ran {ran} migration{'s' * (ran != 1)}" if ran else "already up to date"
    print(f"database schema version {version}: {state}")
    return EXIT_OK


def _cmd_copy(args: argparse.Namespace) -> int:
    import asyncio

    from .lock import server_lock
    from .storage import is_postgres_url
    from .storage.copy import copy_sqlite_to_postgres

    if not is_postgres_url(args.target):
        raise ConfigError(f"--to must be a postgresql:// URL, not {args.target!r}")
    if not args.source.is_file():
        raise ConfigError(f"{args.source}: no such database file")
    with server_lock(args.source, purpose="copy the database"):
        result = asyncio.run(copy_sqlite_to_postgres(args.source, args.target))
    counts = result.counts
    print(f"copied {args.source} to Postgres in {result.seconds:.1f} s: "
          f"{counts['updates']:,} updates (last seq {result.last_seq:,}), "
          f"{counts['directory']:,} customers, {counts['users']:,} accounts, "
          f"{counts['notifications']:,} notifications")
    return EXIT_OK


#: Commands that accept a Postgres URL (backup: pg_dump, see main()).
_POSTGRES_READY: frozenset[Handler] = frozenset({
    _cmd_migrate, _cmd_serve, _cmd_user_add, _cmd_user_list, _cmd_user_disable,
    _cmd_user_set_role, _cmd_user_passwd, _cmd_import, _cmd_demo_data,
})


# -- helpers ---------------------------------------------------------------------------


def _auth(args: argparse.Namespace) -> AuthService:
    """An AuthService on the command's database (imported here: argon2 loads slowly)."""
    from .auth import AuthService

    if isinstance(args.db, str):  # a Postgres URL: its schema may not exist yet
        import asyncio

        from .storage.postgres.schema import migrate_database

        asyncio.run(migrate_database(args.db))
    return AuthService(args.db)


def _customer_suffix(customer_id: str | None) -> str:
    return f" for customer {customer_id}" if customer_id else ""


def _read_password(from_stdin: bool, *, confirm: bool) -> str:
    """The new password: one line of stdin, or typed twice at a terminal prompt."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Repeat the password: ") != password:
            raise ConfigError("the passwords do not match")
    else:
        raise ConfigError("no password: pass --password-stdin, or run this in a terminal")
    if not password:
        raise ConfigError("the password is empty")
    return password


def _read_customers_file(path: Path) -> list[dict[str, Any]]:
    """The JSON array of customer objects in ``path``; ImportFailed naming the file."""
    try:
        # A FIFO would block open() forever and /dev/zero would never end: regular files only.
        if path.exists() and not path.is_dir() and not path.is_file():
            raise ImportFailed(f"{path}: not a regular file")
        with path.open("rb") as file:
            data = json.load(file)
    except FileNotFoundError:
        raise ImportFailed(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImportFailed(f"{path}: is a directory, not a JSON file") from None
    except PermissionError:
        raise ImportFailed(f"{path}: permission denied") from None
    except OSError as exc:
        raise ImportFailed(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ImportFailed(f"{path}: not JSON (the file is not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise ImportFailed(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise ImportFailed(f"{path}: not usable JSON: nested too deeply") from None
    if not isinstance(data, list):
        raise ImportFailed(
            f"{path}: expected a JSON array of customer objects, found {_json_kind(data)}"
        )
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise ImportFailed(
                f"{path}: item {index} is {_json_kind(item)}, not a customer object"
            )
    return data


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _import(db_path: Path | str, records: list[dict[str, Any]]) -> int:
    import_customers = cast(
        Callable[[Path | str, list[dict[str, Any]]], int],
        _lazy("sync.server.importer", "import_customers"),
    )
    return import_customers(db_path, records)


def _lazy(module_name: str, attribute: str) -> Any:
    """``module.attribute``, imported only when a command needs it."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ServerError(f"this build has no {module_name} yet") from exc
    return getattr(module, attribute)
