"""The ``liveedit`` command: a thin dispatcher to the program's four faces.

``liveedit`` opens the desktop app; ``liveedit demo …`` runs the bundled server with demo
data and the app; ``liveedit server …`` runs and administers the reference server;
``liveedit client …`` is the headless client. Each face is imported only when asked for,
so a command never loads a layer it does not use (DESIGN.md, "One command, four faces").
Also ``python -m liveedit``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import cast

from . import __version__

__all__ = ["main"]

EXIT_USAGE = 2

USAGE = """\
usage: liveedit [--version] [--self-test] [COMMAND ...]

With no command, opens the Live Edit desktop app.

commands:
  server ...   run and administer the reference sync server (liveedit server --help)
  client ...   the headless client, for scripts and support tooling
  demo ...     start a local server with demo data and open the app
"""

#: face name -> the module whose ``main(args)`` runs it (imported only when asked for)
_FACES: dict[str | None, str] = {
    "server": "sync.server.cli",
    "client": "liveedit.client_cli",
    "demo": "liveedit.demo",
    None: "ui.main",
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default: the process arguments) to one face; returns the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    first = args[0] if args else None
    if first in ("--version", "-V"):
        print(f"liveedit {__version__}")
        return 0
    if first == "--self-test":
        from .selftest import main as self_test

        return self_test(args[1:])
    if first in ("--help", "-h"):
        print(USAGE, end="")
        return 0
    if first is not None and not first.startswith("-"):
        if first not in _FACES:
            print(USAGE, end="", file=sys.stderr)
            print(f"liveedit: error: unknown command {first!r}", file=sys.stderr)
            return EXIT_USAGE
        args = args[1:]
    else:
        first = None  # options only: they belong to the desktop app
    return _load(_FACES[first])(args)


def _load(module_name: str) -> Callable[[list[str]], int]:
    """The face's ``main`` (every face is part of the build: an ImportError is a bug)."""
    module = importlib.import_module(module_name)
    return cast(Callable[[list[str]], int], module.main)


if __name__ == "__main__":
    sys.exit(main())
