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

#: face name -> (module, message printed when the module is not part of this build)
_FACES: dict[str | None, tuple[str, str]] = {
    "server": ("sync.server.cli", "liveedit server: not built yet"),
    "client": ("app.cli", "liveedit client: not built yet"),
    "demo": ("liveedit.demo", "liveedit demo: app not built yet"),
    None: ("ui.main", "liveedit: app not built yet"),
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
    face = _load(*_FACES[first])
    return face(args) if face is not None else EXIT_USAGE


def _load(module_name: str, missing: str) -> Callable[[list[str]], int] | None:
    """The face's ``main``, or None (after saying so) when this build does not have it."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name and not module_name.startswith(f"{exc.name}."):
            raise  # the face exists but one of its own imports is missing: a real bug
        print(missing, file=sys.stderr)
        return None
    return cast(Callable[[list[str]], int], module.main)


if __name__ == "__main__":
    sys.exit(main())
