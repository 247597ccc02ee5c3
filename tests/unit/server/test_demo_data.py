"""Demo customers (generate_customers) and the demo rep accounts (DEMO_REPS)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sync.protocol.document import TIERS, fields_from_json
from sync.server.auth import AuthService, Role
from sync.server.demo_data import DEMO_REPS, generate_customers


@pytest.fixture(scope="module")
def customers() -> list[dict[str, object]]:
    """2,000 customers from seed 7, generated once for the module."""
    return generate_customers(2000, seed=7)


def test_every_record_is_valid_under_the_document_schema(
    customers: list[dict[str, object]],
) -> None:
    """fields_from_json accepts every record as a full customer, values unchanged."""
    for record in customers:
        fields = fields_from_json(record, partial=False)
        address = record["address"]
        assert isinstance(address, dict)
        assert fields["name"] == record["name"]
        assert fields["phone"] == record["phone"]
        assert fields["zip"] == address["zip"]


def test_record_shape(customers: list[dict[str, object]]) -> None:
    """Each record has the seed-000 keys, a lowercase UUID4 id and a known tier."""
    for record in customers:
        assert set(record) == {"id", "name", "email", "phone", "tier", "address"}
        assert isinstance(record["address"], dict)
        assert set(record["address"]) == {"street1", "street2", "city", "state", "zip"}
        customer_id = record["id"]
        assert isinstance(customer_id, str)
        assert str(uuid.UUID(customer_id)) == customer_id
        assert uuid.UUID(customer_id).version == 4
        assert record["tier"] in TIERS
    assert len({record["id"] for record in customers}) == len(customers)


def test_values_look_realistic(customers: list[dict[str, object]]) -> None:
    """street2 is mostly None, every tier occurs, and names and cities vary."""
    street2 = [r["address"]["street2"] for r in customers]  # type: ignore[index]
    assert 0 < sum(value is not None for value in street2) < len(customers) / 3
    assert {r["tier"] for r in customers} == set(TIERS)
    assert len({r["name"] for r in customers}) > len(customers) * 0.9
    assert len({r["address"]["city"] for r in customers}) > 100  # type: ignore[index]


def test_same_seed_same_customers(customers: list[dict[str, object]]) -> None:
    """A seed always yields the same list; another seed yields another one."""
    assert generate_customers(50, seed=7) == customers[:50]
    other = generate_customers(50, seed=8)
    assert {r["id"] for r in other}.isdisjoint({r["id"] for r in customers[:50]})


def test_small_and_invalid_counts() -> None:
    """Zero customers is an empty list; a negative count raises ValueError."""
    assert generate_customers(0) == []
    with pytest.raises(ValueError, match="-1"):
        generate_customers(-1)


def test_demo_reps_are_valid_accounts(tmp_path: Path) -> None:
    """Both demo reps can be created and can log in with their demo passwords."""
    assert [name for name, _ in DEMO_REPS] == ["alex", "sam"]
    with AuthService(tmp_path / "server.db") as auth:
        for username, password in DEMO_REPS:
            auth.add_user(username, password, Role.REP)
        for username, password in DEMO_REPS:
            assert auth.verify_access(auth.login(username, password).access_token).role is Role.REP
