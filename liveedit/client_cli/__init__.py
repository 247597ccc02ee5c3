"""The headless client, ``liveedit client …``: a face on the client core, like the app.

:mod:`~liveedit.client_cli.commands` runs the commands,
:mod:`~liveedit.client_cli.grammar` declares them (arguments and help) for argparse,
:mod:`~liveedit.client_cli.args` checks argument values, and
:mod:`~liveedit.client_cli.output` shapes what they print (text and JSON).
"""

from __future__ import annotations

from .commands import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "main"]
