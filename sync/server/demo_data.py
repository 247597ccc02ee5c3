"""Demo data for the reference server: realistic fake customers and two demo rep accounts.

Everything here is for demonstrations and tests only. Customers come from Faker (en_US) and
are deterministic for a seed; every record is valid under the customer document schema
(``sync.protocol.document.fields_from_json(record, partial=False)``), with the fields of
the field table (:mod:`sync.protocol.schema`) in its seed-000 shape.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from faker import Faker

from sync.protocol import document, schema
from sync.protocol.errors import InvalidFieldValue
from sync.protocol.schema import TIERS

__all__ = ["DEMO_REPS", "generate_customers"]

log = logging.getLogger(__name__)

#: Two demo rep accounts (username, password). DEMO ONLY: these passwords are public;
#: never create these accounts on a server that holds real customers.
DEMO_REPS: tuple[tuple[str, str], ...] = (
    ("alex", "alex-demo-password"),
    ("sam", "sam-demo-password"),
)

#: How often each tier occurs (same order as ``TIERS``).
_TIER_WEIGHTS = (60, 30, 10)
#: Share of customers with a second address line (apartment, suite, …).
_STREET2_SHARE = 0.15
_NOT_IN_EMAIL = re.compile(r"[^a-z0-9]")


def generate_customers(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` fake customers in the seed-000 JSON shape, the same list for the same seed.

    Each record: ``id`` (lowercase UUID4), ``name``, ``email``, ``phone``, ``tier`` and
    ``address`` {street1, street2 (mostly None), city, state, zip}.
    """
    if n < 0:
        raise ValueError(f"cannot generate {n} customers")
    fake = Faker("en_US")
    fake.seed_instance(seed)
    customers = [_customer(fake) for _ in range(n)]
    log.debug("generated %d demo customers (seed %d)", n, seed)
    return customers


def _customer(fake: Faker) -> dict[str, Any]:
    first, last = fake.first_name(), fake.last_name()
    rng = fake.random
    street2 = fake.secondary_address() if rng.random() < _STREET2_SHARE else None
    customer_id = fake.uuid4()  # Faker calls stay in this order: a seed gives the same data
    made: dict[str, str | None] = {
        "name": f"{first} {last}",
        "email": _email(fake, first, last),
        "phone": _phone(fake),
        "tier": rng.choices(TIERS, weights=_TIER_WEIGHTS)[0],
        "street1": f"{fake.building_number()} {fake.street_name()}",
        "street2": street2,
        "city": fake.city(),
        "state": fake.state_abbr(include_territories=False),
        "zip": fake.zipcode_plus4() if rng.random() < 0.1 else fake.zipcode(),
    }
    # The record has the fields of the table, in its shape: a field the generator does not
    # know is null, one the table no longer has is left out.
    values = {name: made.get(name) for name in schema.field_names()}
    return {"id": customer_id, **document.shape_json(values)}


def _email(fake: Faker, first: str, last: str) -> str:
    """An address that looks like the person's: ``jane.doe42@example.org``."""
    local_first = _NOT_IN_EMAIL.sub("", first.lower()) or "user"
    local_last = _NOT_IN_EMAIL.sub("", last.lower()) or "customer"
    number = fake.random.randint(1, 99)
    return f"{local_first}.{local_last}{number}@{fake.free_email_domain()}"


def _phone(fake: Faker) -> str:
    """Faker's phone number when the schema accepts it, else a plain ``555-123-4567``."""
    phone: str = fake.phone_number()
    try:
        schema.validate("phone", phone)
    except InvalidFieldValue:
        phone = fake.numerify("###-###-####")
    return phone
