"""Fixtures of the client core's unit tests: keyring backends that never touch the user's."""

from __future__ import annotations

from collections.abc import Iterator

import keyring
import pytest
from keyring.backends import fail

from tests.memory_keyring import MemoryKeyring
from tests.memory_keyring import memory_keyring as use_memory_keyring


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """Use an in-memory keyring for the test, then restore the previous backend."""
    with use_memory_keyring() as backend:
        yield backend


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """Use keyring's fail backend (as on a system without a keyring), then restore."""
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        keyring.set_keyring(previous)
