"""The ``liveedit`` command and ``liveedit server …`` run as real subprocesses on a temp --db."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sync.server.auth import AuthService

from .conftest import scaled

PASSWORD = "correct horse battery"
CUSTOMER = "46e216ca-9413-4e7e-b5c7-dfaa5aeadf9e"


def liveedit(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``python -m liveedit ARGS`` with ``stdin`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "liveedit", *args], input=stdin, capture_output=True,
        text=True, timeout=scaled(60), check=False,
    )


def server(db: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``liveedit server ARGS --db DB``."""
    return liveedit("server", *args, "--db", str(db), stdin=stdin)


def assert_one_error_line(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    """The command failed with ``code`` and exactly one error line containing ``text``."""
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("liveedit server: error: ")
    assert text in lines[0]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Path of a fresh server database."""
    return tmp_path / "server.db"


def test_version_comes_from_package_metadata() -> None:
    """``liveedit --version`` prints the installed distribution's version."""
    result = liveedit("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"liveedit {importlib.metadata.version('liveedit')}"


def test_add_list_disable_enable(db: Path) -> None:
    """Accounts added by the CLI are listed, and disable/enable show in the listing."""
    added = server(db, "user", "add", "alice", "--role", "rep", "--password-stdin",
                   stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "alice" in added.stdout
    assert server(db, "user", "add", "bob", "--role", "customer", "--customer", CUSTOMER.upper(),
                  "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    assert server(db, "user", "disable", "bob").stdout.strip() == "disabled user 'bob'"
    listed = json.loads(server(db, "user", "list", "--json").stdout)
    assert listed == [
        {"username": "alice", "role": "rep", "customer_id": None, "disabled": False},
        {"username": "bob", "role": "customer", "customer_id": CUSTOMER, "disabled": True},
    ]
    assert server(db, "user", "enable", "bob").returncode == 0
    table = server(db, "user", "list").stdout.splitlines()
    assert [line.split()[:3] for line in table] == [
        ["alice", "rep", "active"], ["bob", "customer", "active"],
    ]


def test_duplicate_user_is_one_error_line(db: Path) -> None:
    """Adding an existing user exits 1 with one error line and no traceback."""
    server(db, "user", "add", "alice", "--role", "rep", "--password-stdin", stdin=PASSWORD)
    again = server(db, "user", "add", "alice", "--role", "rep", "--password-stdin",
                   stdin=PASSWORD)
    assert_one_error_line(again, 1, "user 'alice' already exists")


def test_password_problems_are_usage_errors(db: Path) -> None:
    """An empty password on stdin, or no password source at all, exits 2."""
    empty = server(db, "user", "add", "carl", "--role", "rep", "--password-stdin", stdin="\n")
    assert_one_error_line(empty, 2, "the password is empty")
    no_tty = server(db, "user", "add", "carl", "--role", "rep")
    assert_one_error_line(no_tty, 2, "--password-stdin")


def test_unknown_user_fails(db: Path) -> None:
    """Disabling a user that does not exist exits 1 naming the user."""
    assert_one_error_line(server(db, "user", "disable", "ghost"), 1, "no user named 'ghost'")


def test_set_role_and_passwd(db: Path) -> None:
    """set-role and passwd change the stored account; the new password logs in."""
    server(db, "user", "add", "alice", "--role", "rep", "--password-stdin", stdin=PASSWORD)
    role = server(db, "user", "set-role", "alice", "--role", "customer", "--customer", CUSTOMER)
    assert role.returncode == 0, role.stderr
    passwd = server(db, "user", "passwd", "alice", "--password-stdin", stdin="new password 1\n")
    assert passwd.returncode == 0, passwd.stderr
    with AuthService(db) as auth:
        claims = auth.verify_access(auth.login("alice", "new password 1").access_token)
    assert (claims.role, claims.customer_id) == ("customer", CUSTOMER)


def test_bad_customer_uuid_is_a_usage_error(db: Path) -> None:
    """A --customer that is not a UUID is rejected by the parser with exit 2."""
    result = server(db, "user", "add", "carl", "--role", "customer", "--customer", "nope",
                    "--password-stdin", stdin=PASSWORD)
    assert result.returncode == 2
    assert "is not a UUID" in result.stderr


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.json", None, "no such file"),
        ("folder.json", "<dir>", "is a directory"),
        ("broken.json", "[{\"name\": ", "not valid JSON"),
        ("object.json", "{\"name\": \"x\"}", "expected a JSON array"),
        ("numbers.json", "[1, 2]", "item 0 is a number"),
        ("binary.json", b"\xff\xfe\x00".decode("latin-1"), "not JSON"),
    ],
)
def test_bad_import_files(
    db: Path, tmp_path: Path, name: str, content: str | None, message: str,
) -> None:
    """An unusable import file exits 2 with one error line naming the file."""
    path = tmp_path / name
    if content == "<dir>":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content.encode("latin-1"))
    result = server(db, "import", str(path))
    assert_one_error_line(result, 2, message)
    assert str(path) in result.stderr


def test_demo_data_count_is_checked(db: Path) -> None:
    """--customers outside 1…1,000,000 is a usage error."""
    result = server(db, "demo-data", "--customers", "0")
    assert result.returncode == 2
    assert "between 1 and 1,000,000" in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("sync.server.importer") is None,
                    reason="sync.server.importer is not written yet")
def test_import_and_demo_data(db: Path, tmp_path: Path) -> None:
    """A valid file and generated demo data are imported and counted."""
    from sync.server.demo_data import generate_customers

    path = tmp_path / "customers.json"
    path.write_text(json.dumps(generate_customers(3, seed=5)))
    imported = server(db, "import", str(path))
    assert (imported.returncode, imported.stdout.strip()) == (0, "imported 3 customers")
    demo = server(db, "demo-data", "--customers", "5", "--seed", "9")
    assert (demo.returncode, demo.stdout.strip()) == (0, "imported 5 customers")


def test_unknown_command_is_a_usage_error() -> None:
    """``liveedit frobnicate`` exits 2 naming the unknown command."""
    result = liveedit("frobnicate")
    assert result.returncode == 2
    assert "unknown command 'frobnicate'" in result.stderr
