"""The ``liveedit client`` command line: the headless client, on the same core as the app.

Commands (each takes ``--data-dir DIR``, default the user's Live Edit profile, and
``--json`` for machine-readable output on stdout)::

    login SERVER_URL USER [--password-stdin] [--no-remember] [--timeout S]
    sync [--password-stdin] [--timeout S]
    show CUSTOMER_ID
    search QUERY [--limit N] [--offset N]
    set CUSTOMER_ID FIELD=VALUE ... [--null FIELD ...]
    notes CUSTOMER_ID --append TEXT
    create FIELD=VALUE ...
    outbox
    conflicts [CUSTOMER_ID]
    resolve CUSTOMER_ID FIELD (--mine | --theirs)
    history CUSTOMER_ID [--limit N] [--password-stdin] [--timeout S]
    revert CUSTOMER_ID SEQ [--field F] [--password-stdin] [--timeout S]
    notifications [--limit N]

Field values: ``FIELD=VALUE`` sets the field to the text VALUE and ``FIELD=`` to the empty
text; ``--null FIELD`` sets it to null (no value). Fields: the rows of the field table
(:mod:`sync.protocol.schema`), listed by ``--help``.

Work is local-first, as in the app: ``set``, ``notes``, ``create``, ``resolve`` and
``revert`` write the replica and queue the change in the outbox, whether or not the server
is reachable; ``sync`` sends the queue and fetches what others changed. Only ``login``,
``sync``, ``history`` and ``revert`` talk to the server, each within ``--timeout`` seconds.
Where the OS has no keyring the sign-in is not saved: pass ``--password-stdin`` to each of
those commands (the password is the first line of stdin).

Exit codes: 0 success; 1 the operation failed (unknown customer, no permission, wrong
password, not signed in, server unreachable, not in sync); 2 usage: a bad command line, an
unknown field or an invalid value. Every error is one line on stderr,
``liveedit client: error: <message>``, and a failed command changes nothing; no traceback
for anything the user can fix. It is a face, like the desktop app, on the client core (``app``),
next to the dispatcher. This module runs the commands; their grammar (arguments, help) is
:mod:`liveedit.client_cli.grammar`, the text and JSON shapes of what it prints come from
:mod:`liveedit.client_cli.output`, its arguments' types from :mod:`liveedit.client_cli.args`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx

from app.core import ClientCore, CustomerView
from app.credentials import CredentialsUnavailable
from app.errors import (
    CoreError,
    InvalidEdit,
    NotSignedIn,
    ServerUnreachable,
    SyncTimeout,
)
from app.replica import ReplicaError
from sync.client.errors import ClientError

from . import output as fmt
from .grammar import PROG, Handler, UsageError, build_parser, default_data_dir

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
NO_KEYRING_WARNING = "no OS keyring: your sign-in is not saved; pass --password-stdin to sync"
_CLOSE_TIMEOUT = 5.0

log = logging.getLogger(__name__)

class CommandFailed(Exception):
    """The operation failed; the message says why and what stays queued (exit 1)."""


def main(argv: list[str] | None = None) -> int:
    """Run one ``liveedit client`` command; returns the process exit code."""
    try:
        args = build_parser(_HANDLERS).parse_args(sys.argv[1:] if argv is None else argv)
        _setup_logging(args.verbose)
        return _run(args)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except InvalidEdit as exc:
        return _fail(str(exc), EXIT_USAGE)
    except CredentialsUnavailable as exc:
        return _fail(f"{exc}; pass --password-stdin", EXIT_FAILED)
    except (CoreError, ClientError, CommandFailed) as exc:
        return _fail(str(exc) or type(exc).__name__, EXIT_FAILED)
    except httpx.HTTPStatusError as exc:
        return _fail(f"the server refused the request (HTTP {exc.response.status_code})",
                     EXIT_FAILED)
    except ReplicaError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except sqlite3.Error as exc:
        return _fail(f"the local replica cannot be used: {exc}", EXIT_FAILED)
    except OSError as exc:
        what = exc.strerror or str(exc)
        return _fail(f"{exc.filename}: {what}" if exc.filename else what, EXIT_FAILED)
    except KeyboardInterrupt:
        return 130


def _fail(message: str, code: int) -> int:
    _err(f"{PROG}: error: {message}")
    return code


def _out(text: str = "") -> None:
    """One line (or block) of command output on stdout."""
    print(text)


def _err(text: str) -> None:
    """One line on stderr (errors, warnings, notes)."""
    print(text, file=sys.stderr)


def _emit_json(data: Any) -> None:
    _out(fmt.dumps(data))


def _setup_logging(verbose: int) -> None:
    """Quiet by default (errors reach the user as one line); ``-v`` info, ``-vv`` debug."""
    level = {0: logging.CRITICAL, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _values(pairs: Sequence[tuple[str, str]], nulls: Sequence[str] = ()) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in [*pairs, *((n, None) for n in nulls)]:
        if name in values:
            raise UsageError(f"field {name!r} given twice")
        values[name] = value
    return values


# -- running a command -----------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir or default_data_dir()
    if args.command != "login" and not (data_dir / "replica.db").exists():
        raise NotSignedIn(f"no profile in {data_dir}: run '{PROG} login' first")
    password = _read_password(args)
    had_dir = data_dir.is_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    fresh = not (data_dir / "replica.db").exists()
    try:
        return asyncio.run(_session(args, data_dir, password))
    except BaseException:
        if fresh:  # a first login that failed leaves no half-made profile behind
            _discard_profile(data_dir, remove_dir=not had_dir)
        raise


def _discard_profile(data_dir: Path, *, remove_dir: bool) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        (data_dir / f"replica.db{suffix}").unlink(missing_ok=True)
    if remove_dir and not any(data_dir.iterdir()):
        data_dir.rmdir()


def _read_password(args: argparse.Namespace) -> str | None:
    """The password from stdin (--password-stdin), a prompt (login at a terminal), or None."""
    if getattr(args, "password_stdin", False):
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin: no password on stdin")
        return password
    if args.command == "login":
        if not sys.stdin.isatty():
            raise UsageError("no terminal to ask for the password: pass --password-stdin")
        return getpass.getpass(f"password for {args.user}: ")
    return None


async def _session(args: argparse.Namespace, data_dir: Path, password: str | None) -> int:
    provider = None
    if password is not None:
        async def provide() -> str | None:
            return password

        provider = provide
    core = ClientCore.open(data_dir, password_provider=provider)
    args.password = password
    try:
        return await cast(Handler, args.handler)(core, args)
    except (ServerUnreachable, SyncTimeout, ClientError) as exc:
        raise CommandFailed(_network_failure(core, args, exc)) from exc
    finally:
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await core.close()
        except TimeoutError:
            log.warning("closing the connection took longer than %g s", _CLOSE_TIMEOUT)


async def _with_timeout(awaitable: Awaitable[Any], seconds: float, server: str | None) -> Any:
    """Await a network operation; past ``seconds``, ServerUnreachable (nothing changed)."""
    try:
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError:
        raise ServerUnreachable(f"no answer from {server or 'the server'} within "
                                f"{seconds:g} s") from None


def _pending(core: ClientCore) -> int:
    return len(core.outbox())


def _queued(core: ClientCore, before: int) -> str:
    waiting = _pending(core)
    return fmt.queued(max(0, waiting - before), waiting)


# -- commands: account and sync ----------------------------------------------------------


async def _cmd_login(core: ClientCore, args: argparse.Namespace) -> int:
    assert args.password is not None
    saved = not args.no_remember
    try:
        await _with_timeout(
            core.login(args.server_url, args.user, args.password, remember=saved),
            args.timeout, args.server_url,
        )
    except CredentialsUnavailable:
        saved = False
        _err(f"{PROG}: warning: {NO_KEYRING_WARNING}")
    if args.json:
        _emit_json({"server_url": args.server_url, "user": args.user, "saved": saved})
    else:
        _out(f"signed in to {args.server_url} as {args.user}")
    return EXIT_OK


async def _cmd_sync(core: ClientCore, args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout
    auth = core.authenticator()
    # Sign in first: a wrong password or a server that is down is reported at once.
    await _with_timeout(auth.access_token(), args.timeout, auth.server_url)
    await core.sync(max(0.1, round(deadline - loop.time(), 1)))
    if args.json:
        _emit_json({"server_url": auth.server_url, "in_sync": True, "pending": 0})
    else:
        _out(f"in sync with {auth.server_url}")
    return EXIT_OK


def _network_failure(core: ClientCore, args: argparse.Namespace, exc: Exception) -> str:
    """One line for a failed network step: why, what to do, and what stays queued."""
    text = str(exc).removesuffix("; your edits stay queued") or type(exc).__name__
    if args.password is None and "sign in" in text:
        text += "; pass --password-stdin"
    count = _pending(core)
    if count and not isinstance(exc, SyncTimeout):  # SyncTimeout already says it
        text += f"; {count} change(s) stay queued"
    return text


# -- commands: reading -------------------------------------------------------------------


async def _cmd_show(core: ClientCore, args: argparse.Namespace) -> int:
    view = await core.open_customer(args.customer)  # held from now on: sync fetches it
    if not any(view.fields.values()) and core.replica.get_directory(view.id) is not None:
        view = _from_directory(core, view)
        _err(f"{PROG}: note: only the directory entry is here; the full record arrives "
             f"with the next '{PROG} sync'")
    if args.json:
        _emit_json(view.as_json())
    else:
        _out(fmt.card(view))
    return EXIT_OK


def _from_directory(core: ClientCore, view: CustomerView) -> CustomerView:
    """The view with the fields the directory knows (before the document arrives)."""
    row = core.replica.get_directory(view.id)
    if row is None:
        return view
    fields = {**view.fields, **row.values}
    return CustomerView(view.id, fields, bool(row.deleted), view.notes, view.tasks,
                        view.comments)


T = TypeVar("T")


def _listing(args: argparse.Namespace, items: Sequence[T], as_json: Callable[[T], Any],
             as_line: Callable[[T], str], empty: str) -> int:
    """Print a list command's result: JSON with --json, else one line each (or ``empty``)."""
    if args.json:
        _emit_json([as_json(item) for item in items])
        return EXIT_OK
    if not items:
        _out(empty)
    for item in items:
        _out(as_line(item))
    return EXIT_OK


async def _cmd_search(core: ClientCore, args: argparse.Namespace) -> int:
    rows = core.search(args.query, limit=args.limit, offset=args.offset)
    return _listing(args, rows, fmt.search_json, fmt.search_line,
                    f"no customer matches {args.query!r}")


async def _cmd_outbox(core: ClientCore, args: argparse.Namespace) -> int:
    entries = core.outbox()
    now = time.time()
    return _listing(args, entries, lambda e: fmt.outbox_json(e, now),
                    lambda e: fmt.outbox_line(e, now), "nothing waiting to sync")


async def _cmd_conflicts(core: ClientCore, args: argparse.Namespace) -> int:
    items = core.conflicts(args.customer)
    return _listing(args, items, fmt.conflict_json, fmt.conflict_line, "no open conflicts")


async def _cmd_notifications(core: ClientCore, args: argparse.Namespace) -> int:
    items = core.notifications(limit=args.limit)
    return _listing(args, items, fmt.notification_json, fmt.notification_line,
                    "no notifications")


# -- commands: editing (local first) -------------------------------------------------------


async def _cmd_set(core: ClientCore, args: argparse.Namespace) -> int:
    values = _values(args.values, args.null)
    if not values:
        raise UsageError("nothing to set: give FIELD=VALUE or --null FIELD")
    before = _pending(core)
    await core.set_fields(args.customer, values)
    _report_edit(core, args, before)
    return EXIT_OK


async def _cmd_notes(core: ClientCore, args: argparse.Namespace) -> int:
    before = _pending(core)
    await core.notes_append(args.customer, args.append)
    _report_edit(core, args, before)
    return EXIT_OK


async def _cmd_create(core: ClientCore, args: argparse.Namespace) -> int:
    if not core.username:
        raise NotSignedIn(f"this profile has no user yet: run '{PROG} login' first")
    before = _pending(core)
    customer_id = await core.create_customer(_values(args.values))
    if args.json:
        _emit_json({"id": customer_id, "pending": _pending(core)})
    else:
        _out(customer_id)
        _err(_queued(core, before))
    return EXIT_OK


async def _cmd_resolve(core: ClientCore, args: argparse.Namespace) -> int:
    before = _pending(core)
    await core.resolve_conflict(args.customer, args.field, use_mine=args.mine)
    if not args.json:
        _out(f"{args.field}: {'your value is written again' if args.mine else 'kept theirs'}")
    _report_edit(core, args, before)
    return EXIT_OK


def _report_edit(core: ClientCore, args: argparse.Namespace, before: int) -> None:
    pending = _pending(core)
    if args.json:
        _emit_json({"queued": max(0, pending - before), "pending": pending})
    elif pending == before:
        _out(f"nothing changed ({pending} waiting to sync)")
    else:
        _out(_queued(core, before))


# -- commands: the server's history -------------------------------------------------------


async def _cmd_history(core: ClientCore, args: argparse.Namespace) -> int:
    versions = await _with_timeout(core.history(args.customer, limit=args.limit),
                                   args.timeout, core.server_url)
    return _listing(args, versions, fmt.history_json, fmt.history_line, "no history")


async def _cmd_revert(core: ClientCore, args: argparse.Namespace) -> int:
    before = _pending(core)
    await _with_timeout(core.revert(args.customer, args.seq, args.field),
                        args.timeout, core.server_url)
    what = args.field or "the customer"
    if not args.json:
        _out(f"brought back {what} as at version {args.seq}; it goes to the server with "
             f"the next '{PROG} sync'")
    _report_edit(core, args, before)
    return EXIT_OK


#: The handler of each command (the grammar, :mod:`liveedit.client_cli.grammar`, names them).
_HANDLERS: dict[str, Handler] = {
    "login": _cmd_login, "sync": _cmd_sync, "show": _cmd_show, "search": _cmd_search,
    "set": _cmd_set, "notes": _cmd_notes, "create": _cmd_create, "outbox": _cmd_outbox,
    "conflicts": _cmd_conflicts, "resolve": _cmd_resolve, "history": _cmd_history,
    "revert": _cmd_revert, "notifications": _cmd_notifications,
}
