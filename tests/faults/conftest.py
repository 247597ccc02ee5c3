"""The fault tests use the integration fixtures: the real server and an in-memory keyring."""

from tests.integration.conftest import _memory_keyring, server, server_factory

__all__ = ["_memory_keyring", "server", "server_factory"]
