// Talking to the server: tokens and requests.
//
// The access token lives in this module's memory only (never localStorage, never a URL).
// The refresh token is an HttpOnly cookie limited to /app/session, which this script cannot
// read; refresh() exchanges it for a new access token. Every state-changing request of the
// page carries X-LiveEdit-Request (CSRF defence, docs/protocol.md "The Customer App").

const SESSION = "session";

let token = null;
let user = null;
let refreshing = null;
let renewTimer = 0;

/** This page instance's session id (echo suppression and presence; not a secret). */
export const sessionId = "web-" + Array.from(crypto.getRandomValues(new Uint8Array(12)),
  (b) => b.toString(16).padStart(2, "0")).join("");

/** An error the server answered with: status, stable code, message, extra fields. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `the server answered ${status}`);
    this.status = status;
    this.code = (body && body.error) || "";
    this.body = body || {};
  }
}

/** The signed-in user ({user, role, customer_id}) or null. */
export function currentUser() { return user; }

/** The access token (memory only) for the live channel's Authorization header. */
export function accessToken() { return token; }

function accept(body) {
  token = body.access_token;
  user = { user: body.user, role: body.role, customer_id: body.customer_id };
  clearTimeout(renewTimer);
  const lead = Math.max(5, body.expires_in - 60) * 1000;
  renewTimer = setTimeout(() => { refresh().catch(() => {}); }, lead);
  return user;
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    cache: "no-store",
    headers: { "Content-Type": "application/json", "X-LiveEdit-Request": "1" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Sign in with a username and password. */
export async function signIn(username, password) {
  return accept(await post(SESSION, { username, password }));
}

/** A new access token from the refresh cookie; one request however many callers ask. */
export function refresh() {
  if (!refreshing) {
    refreshing = post(`${SESSION}/refresh`).then(accept).finally(() => { refreshing = null; });
  }
  return refreshing;
}

/** Sign out: the server revokes the refresh token and drops the cookie. */
export async function signOut() {
  clearTimeout(renewTimer);
  token = null;
  user = null;
  await post(`${SESSION}/logout`);
}

/** Forget the tokens without asking the server (the session ended elsewhere). */
export function forget() {
  clearTimeout(renewTimer);
  token = null;
  user = null;
}

/** A JSON request with the access token; renews it once when it expired. */
export async function request(method, path, body, retried = false) {
  const headers = {
    Authorization: `Bearer ${token}`,
    "X-Session-Id": sessionId,
    "X-LiveEdit-Request": "1",
  };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401 && !retried) {
    await refresh();
    return request(method, path, body, true);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}
