"""The Live Edit desktop app: PySide6 windows, dialogs and Qt views over the client core.

Only this package imports Qt (and qasync). It talks to the core through
:class:`app.core.ClientCore` alone, and :mod:`ui.bridge` is the one place where core events
become Qt signals. Nothing here blocks the event loop: network work runs as coroutines on
the qasync loop, started with :func:`ui.tasks.spawn`.
"""
