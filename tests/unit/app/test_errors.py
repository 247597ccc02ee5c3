"""The client core's exception hierarchy is one tree, drawn once in app.errors."""

from __future__ import annotations

import app.errors
from app.errors import CoreError, NotLiveEditServer, ServerUnreachable


def test_not_live_edit_server_is_in_the_core_hierarchy() -> None:
    """NotLiveEditServer lives in app.errors, under ServerUnreachable, and the drawing
    in the module's docstring names it."""
    assert NotLiveEditServer.__module__ == "app.errors"
    assert issubclass(NotLiveEditServer, ServerUnreachable)
    assert issubclass(NotLiveEditServer, CoreError)
    assert "NotLiveEditServer" in (app.errors.__doc__ or "")
    assert "NotLiveEditServer" in app.errors.__all__
