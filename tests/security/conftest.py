"""The integration fixtures (a real server subprocess per test) for the security tests."""

from tests.integration.conftest import _memory_keyring, server, server_factory

__all__ = ["_memory_keyring", "server", "server_factory"]
