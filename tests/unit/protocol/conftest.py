"""Shared settings for the protocol tests.

The ``protocol`` hypothesis profile keeps the whole protocol run fast (well under 30 s).
Set ``LIVEEDIT_HYPOTHESIS_SCALE`` (a number, default 1) to run more or fewer examples,
e.g. ``LIVEEDIT_HYPOTHESIS_SCALE=20`` for a long fuzzing session. Tests opt in with
``@settings(parent=settings.get_profile("protocol"))`` so other test packages keep theirs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SCALE = float(os.environ.get("LIVEEDIT_HYPOTHESIS_SCALE", "1"))

settings.register_profile(
    "protocol",
    max_examples=max(1, int(60 * _SCALE)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
