"""Command-line values of ``liveedit client``: argparse ``type=`` converters.

Each function turns one argument's text into its value, or raises
``argparse.ArgumentTypeError`` with a message saying what a valid value looks like;
argparse then reports it as a usage error (exit 2). Which arguments each command takes
is :mod:`liveedit.client_cli`'s job.
"""

from __future__ import annotations

import argparse
import uuid

from sync.protocol import schema

__all__ = [
    "assignment",
    "customer_id",
    "field_name",
    "natural",
    "positive",
    "seconds",
    "server_url",
]


def customer_id(text: str) -> str:
    """A customer id (a UUID), in canonical lowercase form."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a customer id (a UUID)") from None


def field_name(text: str) -> str:
    """The name of a customer field (a row of ``sync.protocol.schema``)."""
    if text not in schema.field_names():
        raise argparse.ArgumentTypeError(
            f"unknown field {text!r}; fields: {', '.join(schema.field_names())}")
    return text


def assignment(text: str) -> tuple[str, str]:
    """``FIELD=VALUE`` as ``(field, value)``; ``FIELD=`` gives the empty text."""
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not FIELD=VALUE")
    return field_name(name.strip()), value


def server_url(text: str) -> str:
    """An http:// or https:// server URL, without a trailing slash."""
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text.rstrip("/")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def seconds(text: str) -> float:
    """A timeout in seconds: more than 0, at most 3600."""
    value = _number(text)
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("must be between 0 and 3600 seconds")
    return value


def natural(text: str) -> int:
    """A whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def positive(text: str) -> int:
    """A whole number, 1 or more."""
    value = natural(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
