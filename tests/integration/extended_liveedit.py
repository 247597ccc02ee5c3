"""``python -m tests.integration.extended_liveedit …``: the ``liveedit`` command run with
the field table extended by :data:`PHONE2` (tests only).

A server started this way is the real server, in its own process, built from a table with
one more row: the test of issue 11 shows that such a row alone reaches every face.
"""

from __future__ import annotations

import sys

from liveedit.__main__ import main
from sync.protocol import schema

__all__ = ["PHONE2"]

#: The test-only field: a second phone number, a searchable directory column that a
#: customer may write (like ``phone``).
PHONE2 = schema.Field(
    "phone2", "Second phone", schema.text_rule(40), "Contact", directory=True,
    searchable=True, writers=frozenset({schema.Role.REP, schema.Role.CUSTOMER}),
    max_length=40,
)

if __name__ == "__main__":
    with schema.extended(PHONE2):
        sys.exit(main())
