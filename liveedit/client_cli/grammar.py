"""The grammar of ``liveedit client``: its commands, their arguments and their help.

:func:`build_parser` builds the argparse parser; what each command does is
:mod:`liveedit.client_cli.commands` (it passes its handlers in, so this module knows no
behaviour), and each argument's value is checked by :mod:`liveedit.client_cli.args`. A
usage error is raised as :class:`UsageError` (one line, exit 2), never printed here.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, cast

from platformdirs import user_data_dir

from sync.protocol import schema

from . import args as cli_args

if TYPE_CHECKING:
    from app.core import ClientCore

__all__ = [
    "DEFAULT_TIMEOUT",
    "PROG",
    "Handler",
    "Parser",
    "UsageError",
    "build_parser",
    "default_data_dir",
    "network_options",
]

PROG = "liveedit client"
DEFAULT_TIMEOUT = 30.0

#: What runs one command: the open profile and the parsed arguments → exit code.
Handler = Callable[["ClientCore", argparse.Namespace], Awaitable[int]]


class UsageError(Exception):
    """A bad command line or input value (exit 2)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (raised, printed by ``main``)."""

    def error(self, message: str) -> NoReturn:
        hint = f" (see '{self.prog} --help')"
        raise UsageError(message + hint)


def default_data_dir() -> Path:
    """The profile folder used when ``--data-dir`` is not given."""
    return Path(user_data_dir("liveedit")) / "profile"


def _common_options() -> Parser:
    """The options every command takes (a parent parser)."""
    common = Parser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                        help=f"the profile folder (default: {default_data_dir()})")
    common.add_argument("--json", action="store_true", help="print JSON on stdout")
    common.add_argument("-v", "--verbose", action="count", default=0,
                        help="log to stderr (-v info, -vv debug)")
    return common


def build_parser(handlers: Mapping[str, Handler]) -> argparse.ArgumentParser:
    """The whole command line; each command's ``handler`` default is ``handlers[name]``
    (every command needs one: a missing name raises KeyError at once)."""
    common = _common_options()
    parser = Parser(prog=PROG, description="The headless Live Edit client.",
                    epilog="FIELD=VALUE sets text (FIELD= the empty text); --null FIELD "
                           f"sets null. Fields: {', '.join(schema.field_names())}.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = cast(argparse.ArgumentParser,
                   commands.add_parser(name, parents=[common], help=help_text,
                                       description=help_text))
        sub.set_defaults(handler=handlers[name])
        return sub

    login = add("login", "sign in and make this profile belong to USER")
    login.add_argument("server_url", metavar="SERVER_URL", type=cli_args.server_url)
    login.add_argument("user", metavar="USER")
    network_options(login)
    login.add_argument("--no-remember", action="store_true",
                       help="do not save the sign-in in the OS keyring")
    network_options(add("sync", "send queued changes, fetch others' changes"))
    show = add("show", "show one customer")
    show.add_argument("customer", type=cli_args.customer_id, metavar="CUSTOMER_ID")
    search = add("search", "search the local directory (offline)")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("--limit", type=cli_args.positive, default=20, metavar="N")
    search.add_argument("--offset", type=cli_args.natural, default=0, metavar="N")
    edit = add("set", "set fields of a customer (queued until synced)")
    edit.add_argument("customer", type=cli_args.customer_id, metavar="CUSTOMER_ID")
    edit.add_argument("values", nargs="*", type=cli_args.assignment, metavar="FIELD=VALUE")
    edit.add_argument("--null", action="append", default=[], type=cli_args.field_name,
                      metavar="FIELD", help="set FIELD to null")
    notes = add("notes", "add to a customer's case notes")
    notes.add_argument("customer", type=cli_args.customer_id, metavar="CUSTOMER_ID")
    notes.add_argument("--append", required=True, metavar="TEXT")
    create = add("create", "create a customer (prints its id)")
    create.add_argument("values", nargs="+", type=cli_args.assignment, metavar="FIELD=VALUE")
    add("outbox", "changes waiting to be synced, oldest first")
    conflicts = add("conflicts", "open conflicts")
    conflicts.add_argument("customer", nargs="?", type=cli_args.customer_id, metavar="CUSTOMER_ID")
    resolve = add("resolve", "settle a conflict on one field")
    resolve.add_argument("customer", type=cli_args.customer_id, metavar="CUSTOMER_ID")
    resolve.add_argument("field", type=cli_args.field_name, metavar="FIELD")
    side = resolve.add_mutually_exclusive_group(required=True)
    side.add_argument("--mine", action="store_true", help="write my value again")
    side.add_argument("--theirs", action="store_true", help="keep their value")
    history = add("history", "a customer's versions on the server")
    history.add_argument("customer", type=cli_args.customer_id, metavar="CUSTOMER_ID")
    history.add_argument("--limit", type=cli_args.positive, default=50, metavar="N")
    network_options(history)
    revert = add("revert", "bring back a customer (or a field) as at SEQ")
    revert.add_argument("customer", type=cli_args.customer_id, metavar="CUSTOMER_ID")
    revert.add_argument("seq", type=cli_args.positive, metavar="SEQ")
    revert.add_argument("--field", type=cli_args.field_name, metavar="FIELD")
    network_options(revert)
    notifications = add("notifications", "the activity feed")
    notifications.add_argument("--limit", type=cli_args.positive, default=50, metavar="N")
    return parser


def network_options(parser: argparse.ArgumentParser) -> None:
    """``--password-stdin`` and ``--timeout``, for the commands that talk to the server."""
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of stdin")
    parser.add_argument("--timeout", type=cli_args.seconds, default=DEFAULT_TIMEOUT, metavar="S",
                        help=f"give up after S seconds (default {DEFAULT_TIMEOUT:g})")
