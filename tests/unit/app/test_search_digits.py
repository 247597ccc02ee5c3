"""Phone search by digits in the local replica (issue 15, item 4), offline, through the
core's search: however the number was stored and however it is typed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core import ClientCore


@pytest.fixture
def core(tmp_path: Path) -> Iterator[ClientCore]:
    """An offline profile holding two customers whose phones are written differently."""
    c = ClientCore.open(tmp_path / "profile")
    asyncio.run(c.create_customer({"name": "Ada Lovelace", "phone": "(823) 497-3210"}))
    asyncio.run(c.create_customer({"name": "Grace Hopper", "phone": "8234973299"}))
    yield c
    asyncio.run(c.close())


@pytest.mark.parametrize("typed", ["(823) 497-3210", "497-3210", "4973210", "8234973210",
                                   "823 497 3210", "823.497.3210", "823-497-3210"])
def test_a_phone_number_is_found_whatever_its_format(core: ClientCore, typed: str) -> None:
    """Every way of typing the number finds the customer stored as "(823) 497-3210"."""
    assert [r.name for r in core.search(typed)] == ["Ada Lovelace"]


def test_digits_match_only_whole_number_tails(core: ClientCore) -> None:
    """A stored number's shared prefix finds both; its tail only the one it ends."""
    assert sorted(r.name for r in core.search("823497")) == ["Ada Lovelace", "Grace Hopper"]
    assert [r.name for r in core.search("3299")] == ["Grace Hopper"]
    assert [r.name for r in core.search("Hopper 3299")] == ["Grace Hopper"]
