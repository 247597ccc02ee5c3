"""Refresh tokens in the OS keyring: stored there only, never in a file."""

from __future__ import annotations

from pathlib import Path

import keyring
import keyring.errors
import pytest
from keyring.backend import KeyringBackend

from app.credentials import SERVICE, UNAVAILABLE_MESSAGE, CredentialStore, CredentialsUnavailable

from .conftest import MemoryKeyring

URL = "https://desk.example:8443"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home and data dir for the test, so any file written would show up."""
    home = tmp_path / "home"
    home.mkdir()
    for var in ("HOME", "USERPROFILE", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "APPDATA"):
        monkeypatch.setenv(var, str(home))
    monkeypatch.chdir(home)
    return home


def files_under(path: Path) -> list[Path]:
    """Every file below ``path``."""
    return [p for p in path.rglob("*") if p.is_file()]


def test_save_load_delete_round_trip(memory_keyring: MemoryKeyring) -> None:
    """A saved token loads back, under service 'liveedit' and 'url|user'; delete forgets it."""
    store = CredentialStore()
    assert store.available()
    store.save(URL, "alex", "refresh-1")
    assert memory_keyring.secrets == {(SERVICE, f"{URL}|alex"): "refresh-1"}
    assert store.load(URL, "alex") == "refresh-1"
    store.delete(URL, "alex")
    assert store.load(URL, "alex") is None


def test_tokens_are_per_server_and_user(memory_keyring: MemoryKeyring) -> None:
    """Another user or server does not see the token; saving again replaces it."""
    store = CredentialStore()
    store.save(URL, "alex", "a")
    store.save(URL, "alex", "b")
    assert store.load(URL, "alex") == "b"
    assert store.load(URL, "sam") is None
    assert store.load("https://other.example", "alex") is None


def test_delete_of_missing_token_is_harmless(memory_keyring: MemoryKeyring) -> None:
    """Deleting a token that was never stored raises nothing and leaves others alone."""
    store = CredentialStore()
    store.save(URL, "sam", "s")
    store.delete(URL, "alex")
    assert store.load(URL, "sam") == "s"


@pytest.mark.usefixtures("no_keyring")
def test_without_keyring_every_operation_says_so_and_writes_nothing(home: Path) -> None:
    """With keyring's fail backend: CredentialsUnavailable with the message, no file."""
    store = CredentialStore()
    assert not store.available()
    with pytest.raises(CredentialsUnavailable) as info:
        store.save(URL, "alex", "secret-refresh-token")
    assert str(info.value) == UNAVAILABLE_MESSAGE
    with pytest.raises(CredentialsUnavailable, match="no OS keyring is available"):
        store.load(URL, "alex")
    with pytest.raises(CredentialsUnavailable, match="ask for your password instead"):
        store.delete(URL, "alex")
    assert files_under(home) == []


def test_plain_file_keyring_is_never_used(home: Path) -> None:
    """A keyrings.alt-style backend (secrets in a file) counts as no keyring."""

    class PlainFile(KeyringBackend):
        priority = 1

        def get_password(self, service: str, username: str) -> str | None:
            return None

        def set_password(self, service: str, username: str, password: str) -> None:
            (home / "keyring_pass.cfg").write_text(password)

        def delete_password(self, service: str, username: str) -> None:
            pass

    PlainFile.__module__ = "keyrings.alt.file"
    previous = keyring.get_keyring()
    keyring.set_keyring(PlainFile())  # type: ignore[no-untyped-call]
    try:
        store = CredentialStore()
        assert not store.available()
        with pytest.raises(CredentialsUnavailable):
            store.save(URL, "alex", "secret-refresh-token")
    finally:
        keyring.set_keyring(previous)
    assert files_under(home) == []


def test_keyring_error_on_save_becomes_unavailable(memory_keyring: MemoryKeyring) -> None:
    """A keyring that refuses the secret (e.g. locked) gives CredentialsUnavailable."""

    def refuse(service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("the keyring is locked")

    memory_keyring.set_password = refuse  # type: ignore[method-assign]
    with pytest.raises(CredentialsUnavailable, match="locked"):
        CredentialStore().save(URL, "alex", "t")
