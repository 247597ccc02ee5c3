"""Live Edit: the ``liveedit`` command and the version of the installed distribution."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    #: The version, read from the installed metadata (its one source is pyproject.toml).
    __version__ = version("liveedit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
