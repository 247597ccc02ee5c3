"""The HTTP API over real sockets: auth, roles, validation, history, feeds, OpenAPI."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from .conftest import DEFAULT_PASSWORD, ServerHandle, both_engines


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def http(server: ServerHandle) -> httpx.Client:
    """An HTTP client for the running server, with a rep 'alex' already created."""
    server.add_user("alex")
    return httpx.Client(base_url=server.http_url, timeout=10)


def create(http: httpx.Client, token: str, **extra: Any) -> dict[str, Any]:
    """Create a customer and return its JSON."""
    body = {"name": "John Smith", "address": {"street1": "101 Main Street", "city": "Washington DC",
                                              "state": "DC", "zip": "20001"}, **extra}
    response = http.post("/customers", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@both_engines
def test_login_returns_bearer_tokens(server: ServerHandle, http: httpx.Client) -> None:
    """POST /auth/login returns access and refresh tokens in the documented shape."""
    body = http.post("/auth/login", json={"username": "alex", "password": DEFAULT_PASSWORD})
    assert body.status_code == 200
    tokens = body.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] > 0
    assert tokens["access_token"] and tokens["refresh_token"]


@pytest.mark.parametrize("password", ["wrong password", ""])
def test_wrong_credentials_get_401(http: httpx.Client, password: str) -> None:
    """Wrong or empty passwords get a clear error and no tokens."""
    response = http.post("/auth/login", json={"username": "alex", "password": password})
    assert response.status_code in {401, 422}
    assert "access_token" not in response.json()
    assert response.json()["message"]


@both_engines
def test_refresh_rotates_and_old_token_is_refused(server: ServerHandle,
                                                  http: httpx.Client) -> None:
    """A refresh token rotates; once its successor is used, replaying it is refused (401)
    and the successor's line is revoked too."""
    tokens = server.login("alex")
    first = http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200
    second = http.post("/auth/refresh", json={"refresh_token": first.json()["refresh_token"]})
    assert second.status_code == 200
    replay = http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert replay.status_code == 401
    after = http.post("/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})
    assert after.status_code == 401


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Basic abc"])
def test_missing_or_forged_token_gets_401(http: httpx.Client, header: str | None) -> None:
    """No token, a forged token or another scheme: 401 with a message, no data."""
    headers = {"Authorization": header} if header else {}
    response = http.get("/customers", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "auth_failed"


@both_engines
def test_create_read_patch_delete_restore(server: ServerHandle, http: httpx.Client) -> None:
    """The seed-000 shape round-trips; merge patch; delete is a restorable tombstone."""
    token = server.token("alex")
    customer = create(http, token, email="john@example.com")
    cid = customer["id"]
    assert customer["address"]["city"] == "Washington DC" and customer["address"]["street2"] is None
    got = http.get(f"/customers/{cid}", headers=bearer(token)).json()
    assert got == customer
    patched = http.patch(f"/customers/{cid}", json={"address": {"street2": "Apt 4"},
                                                    "email": None}, headers=bearer(token))
    assert patched.status_code == 200
    body = patched.json()
    assert body["address"]["street2"] == "Apt 4" and body["address"]["city"] == "Washington DC"
    assert body["email"] is None and body["version"] > customer["version"]
    deleted = http.delete(f"/customers/{cid}", headers=bearer(token)).json()
    assert deleted["deleted"] is True
    listed = http.get("/customers", params={"q": "John"}, headers=bearer(token)).json()
    assert cid not in [c["id"] for c in listed["items"]]
    restored = http.post(f"/customers/{cid}/restore", headers=bearer(token)).json()
    assert restored["deleted"] is False


@pytest.mark.parametrize("patch,field", [
    ({"email": "not-an-email"}, "email"),
    ({"colour": "red"}, "colour"),
    ({"address": {"planet": "Mars"}}, "address.planet"),
    ({"city": "Paris"}, "city"),
    ({"name": 42}, "name"),
    ({"tier": "diamond"}, "tier"),
])
def test_invalid_patch_is_refused_and_changes_nothing(
    server: ServerHandle, http: httpx.Client, patch: dict[str, Any], field: str,
) -> None:
    """Each invalid value gets 422 naming the field, and the customer is unchanged."""
    token = server.token("alex")
    customer = create(http, token)
    response = http.patch(f"/customers/{customer['id']}", json=patch, headers=bearer(token))
    assert response.status_code == 422
    assert field in response.json()["message"]
    after = http.get(f"/customers/{customer['id']}", headers=bearer(token)).json()
    assert after == customer


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_bad_json_bodies_get_422(server: ServerHandle, http: httpx.Client, body: bytes) -> None:
    """Bodies that are not a JSON object get 422 with a message."""
    response = http.post("/customers", content=body, headers={
        **bearer(server.token("alex")), "Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["message"]


def test_unknown_customer_gets_404(server: ServerHandle, http: httpx.Client) -> None:
    """Unknown and malformed ids get 404 with a message."""
    token = server.token("alex")
    for cid in (str(uuid.uuid4()), "not-a-uuid"):
        response = http.get(f"/customers/{cid}", headers=bearer(token))
        assert response.status_code == 404
        assert response.json()["error"] == "unknown_document"


@both_engines
def test_customer_user_sees_only_its_own_account(server: ServerHandle,
                                                 http: httpx.Client) -> None:
    """A customer user gets 403 on other accounts by every HTTP route, its own is fine."""
    token = server.token("alex")
    own = create(http, token, name="Own Account")
    other = create(http, token, name="Other Account")
    server.add_user("carol", role="customer", customer_id=own["id"])
    carol = bearer(server.token("carol"))
    assert http.get(f"/customers/{own['id']}", headers=carol).status_code == 200
    oid = other["id"]
    for method, path in [("GET", f"/customers/{oid}"), ("PATCH", f"/customers/{oid}"),
                         ("GET", f"/customers/{oid}/history"),
                         ("GET", f"/customers/{oid}/versions/1")]:
        response = http.request(method, path, headers=carol, json={"name": "x"})
        assert response.status_code == 403, (method, path)
    listed = http.get("/customers", params={"q": "Account"}, headers=carol).json()
    assert [c["id"] for c in listed["items"]] == [own["id"]]
    feed = http.get("/directory", headers=carol).json()
    assert [e["id"] for e in feed["entries"]] == [own["id"]]
    notes = http.get("/notifications", headers=carol).json()
    assert {n["customer_id"] for n in notes["items"]} <= {own["id"]}
    assert http.post("/customers", json={"name": "x"}, headers=carol).status_code == 403


@both_engines
def test_history_and_versions(server: ServerHandle, http: httpx.Client) -> None:
    """History lists versions with authors and fields; a version shows the old values."""
    token = server.token("alex")
    customer = create(http, token)
    cid = customer["id"]
    http.patch(f"/customers/{cid}", json={"address": {"city": "Boston"}}, headers=bearer(token))
    history = http.get(f"/customers/{cid}/history", headers=bearer(token)).json()["items"]
    assert [v["author"] for v in history] == ["alex", "alex"]
    assert history[0]["changes"] == ["city"]
    old = http.get(f"/customers/{cid}/versions/{history[1]['seq']}", headers=bearer(token))
    assert old.json()["address"]["city"] == "Washington DC"
    assert old.json()["notes"] == "" and old.json()["tasks"] == []


@both_engines
def test_search_matches_word_prefixes(server: ServerHandle, http: httpx.Client) -> None:
    """Search finds customers by name, e-mail and zip prefixes; quotes are harmless."""
    token = server.token("alex")
    create(http, token, name="Zed Quinton", email="zq@example.org")
    for query in ("quin", "zq@exa", "2000", "zed quin", '"zed'):
        found = http.get("/customers", params={"q": query}, headers=bearer(token)).json()
        assert [c["name"] for c in found["items"]] == ["Zed Quinton"], query
    none = http.get("/customers", params={"q": "' OR 1=1 --"}, headers=bearer(token)).json()
    assert none["items"] == []


@both_engines
def test_directory_feed_pages_by_cursor(server: ServerHandle, http: httpx.Client) -> None:
    """The directory feed pages in cursor order and resumes after a cursor."""
    token = server.token("alex")
    ids = [create(http, token, name=f"Page {i}")["id"] for i in range(5)]
    first = http.get("/directory", params={"limit": 3}, headers=bearer(token)).json()
    assert first["more"] is True and [e["id"] for e in first["entries"]] == ids[:3]
    rest = http.get("/directory", params={"cursor": first["cursor"]},
                    headers=bearer(token)).json()
    assert rest["more"] is False and [e["id"] for e in rest["entries"]] == ids[3:]


def test_openapi_description_is_served(http: httpx.Client) -> None:
    """/openapi.json describes the customer routes."""
    spec = http.get("/openapi.json").json()
    assert {"/customers", "/customers/{customer_id}", "/auth/login"} <= set(spec["paths"])
    assert "patch" in spec["paths"]["/customers/{customer_id}"]
