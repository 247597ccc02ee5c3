// The Customer App: sign in, see your account change live, fix your own details.
//
// Every value from the server is rendered with textContent or as an input's value, never as
// HTML (names and notes are attacker-controlled). The form is built from the field table the
// server sends with each state (label, group, who may write it), so a new field reaches the
// page without a change here.

import * as api from "./api.js";
import { LiveChannel } from "./live.js";

const $ = (id) => document.getElementById(id);
const STATUS_TEXT = {
  connecting: "Connecting…",
  live: "Live: changes appear as they happen",
  reconnecting: "Reconnecting…",
  polling: "Live updates are not available on this network; checking for changes every few seconds",
  signedOut: "Signed out",
};

let channel = null;
let customerId = null;
let fields = new Map();       // name -> {row, input, note, box, dirty, base}
let fieldKey = "";
let activity = new Map();     // notification seq -> item
let editingField = null;

function show(view) {
  for (const id of ["sign-in-view", "account-view", "refused-view"]) $(id).hidden = id !== view;
}

function setStatus(state) {
  const el = $("status");
  el.textContent = STATUS_TEXT[state] || "";
  el.className = "status " + ({ live: "live", reconnecting: "down", polling: "polling" }[state] || "");
  el.dataset.state = state;
}

function notice(text, isError = false) {
  const el = $("notice");
  el.textContent = text;
  el.hidden = !text;
  el.classList.toggle("error-notice", isError);
}

// --- sign in / out --------------------------------------------------------------------

async function boot() {
  $("sign-in-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", onSignOut);
  $("account-form").addEventListener("submit", onSave);
  $("discard").addEventListener("click", discard);
  window.addEventListener("hashchange", route);
  setInterval(renderActivityTimes, 30000);
  try {
    await api.refresh();
  } catch {
    showSignIn();
    return;
  }
  route();
}

function showSignIn(message = "") {
  setStatus("signedOut");
  $("sign-out").hidden = true;
  show("sign-in-view");
  $("sign-in-error").textContent = message;
  $("username").focus();
}

async function onSignIn(event) {
  event.preventDefault();
  const username = $("username").value.trim();
  const password = $("password").value;
  if (!username || !password) {
    $("sign-in-error").textContent = "Enter your username and password.";
    return;
  }
  $("sign-in-error").textContent = "";
  try {
    await api.signIn(username, password);
  } catch (err) {
    $("sign-in-error").textContent = err.status === 401
      ? "Wrong username or password." : `Could not sign in: ${err.message}`;
    return;
  }
  $("password").value = "";
  route();
}

async function onSignOut() {
  closeAccount();
  try { await api.signOut(); } catch { api.forget(); }
  history.replaceState(null, "", location.pathname);
  showSignIn("You are signed out.");
}

// --- which account ----------------------------------------------------------------------

function route() {
  const user = api.currentUser();
  if (!user) { showSignIn(); return; }
  $("sign-out").hidden = false;
  const match = /^#\/customers\/([^/]+)$/.exec(location.hash);
  let id = match ? decodeURIComponent(match[1]) : null;
  if (!id && user.customer_id) {
    id = user.customer_id;
    history.replaceState(null, "", `#/customers/${encodeURIComponent(id)}`);
  }
  if (!id) {
    refused("This page shows one customer's account. Support agents: add "
      + "#/customers/<customer id> to the address.", false);
    return;
  }
  if (id === customerId && channel) return;
  openAccount(id);
}

function openAccount(id) {
  closeAccount();
  customerId = id;
  show(null);
  setStatus("connecting");
  channel = new LiveChannel(id, {
    onEvent,
    onStatus: setStatus,
    onRefused: (err) => {
      if (err.status === 401) {
        closeAccount();
        api.forget();
        showSignIn("Your session has ended; please sign in again.");
      } else {
        refused(err.status === 403
          ? "You can only see your own account." : "There is no such account.", true);
      }
    },
  });
  channel.start();
}

function closeAccount() {
  if (channel) channel.stop();
  channel = null;
  customerId = null;
  fields = new Map();
  fieldKey = "";
  activity = new Map();
  $("groups").replaceChildren();
  $("activity").replaceChildren();
  $("conflicts").replaceChildren();
  $("presence").hidden = true;
  $("notes-card").hidden = true;
  $("notes").textContent = "";
  $("save-result").textContent = "";
  notice("");
}

function refused(message, offerOwn) {
  closeAccount();
  setStatus("");
  show("refused-view");
  $("refused-message").textContent = message;
  const own = api.currentUser() && api.currentUser().customer_id;
  const link = $("own-account");
  link.parentElement.hidden = !(offerOwn && own);
  if (own) link.href = `#/customers/${encodeURIComponent(own)}`;
}

// --- live events ------------------------------------------------------------------------

function onEvent(type, data) {
  if (type === "state" || type === "change") {
    applyState(data, type === "change" ? "change" : "state");
    if ($("account-view").hidden) show("account-view");
  } else if (type === "activity") {
    addActivity(data.items || [], Boolean(data.replace));
  } else if (type === "presence") {
    renderPresence(data.viewers || []);
  }
}

function buildForm(rows) {
  const groups = $("groups");
  groups.replaceChildren();
  fields = new Map();
  const byGroup = new Map();
  for (const row of rows) {
    if (!byGroup.has(row.group)) byGroup.set(row.group, []);
    byGroup.get(row.group).push(row);
  }
  for (const [group, members] of byGroup) {
    const set = document.createElement("fieldset");
    const legend = document.createElement("legend");
    legend.textContent = group;
    const grid = document.createElement("div");
    grid.className = "fields";
    set.append(legend, grid);
    for (const row of members) grid.append(buildField(row));
    groups.append(set);
  }
}

function buildField(row) {
  const box = document.createElement("div");
  box.className = "field";
  box.dataset.field = row.name;
  const id = `field-${row.name}`;
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = row.label;
  let input;
  if (row.choices) {
    input = document.createElement("select");
    for (const choice of ["", ...row.choices]) {
      const option = document.createElement("option");
      option.value = choice;
      option.textContent = choice || "(none)";
      input.append(option);
    }
  } else {
    input = document.createElement("input");
    input.type = row.name === "email" ? "email" : row.name === "phone" ? "tel" : "text";
    input.maxLength = row.max_length;
    input.autocomplete = { email: "email", phone: "tel", street1: "address-line1",
      street2: "address-line2", city: "address-level2", state: "address-level1",
      zip: "postal-code", name: "name" }[row.name] || "off";
  }
  input.id = id;
  input.name = row.name;
  const note = document.createElement("p");
  note.className = "note";
  note.id = `${id}-note`;
  input.setAttribute("aria-describedby", note.id);
  if (!row.writable) {
    if (input.tagName === "SELECT") input.disabled = true; else input.readOnly = true;
    note.textContent = "Only support can change this.";
  }
  const entry = { row, input, note, box, dirty: false, base: null };
  input.addEventListener("input", () => onInput(entry));
  input.addEventListener("change", () => onInput(entry));
  input.addEventListener("focus", () => sendEditing(row.writable ? entry.row.name : null));
  input.addEventListener("blur", () => sendEditing(null));
  fields.set(row.name, entry);
  box.append(label, input, note);
  return box;
}

function shown(value) { return value === null || value === undefined ? "" : String(value); }

function applyState(state, kind) {
  const key = state.fields.map((r) => `${r.name}:${r.writable}`).join(",");
  if (key !== fieldKey) {
    buildForm(state.fields);
    fieldKey = key;
  }
  const missed = new Set(state.missed || []);
  const changedNames = [];
  for (const row of state.fields) {
    const entry = fields.get(row.name);
    const before = entry.row;
    const valueChanged = shown(before.value) !== shown(row.value);
    entry.row = row;
    if (entry.dirty && entry.input.value === shown(row.value)) {
      entry.dirty = false; // someone else made the same change: nothing left to save
      entry.input.classList.remove("dirty");
    }
    if (entry.dirty) {
      if (valueChanged || before.version !== row.version) {
        entry.note.textContent = `${whoText(row.by)} changed this to “${shown(row.value)}” `
          + "while you were editing. Save to keep yours, or discard.";
        entry.note.classList.add("changed");
      }
      continue;
    }
    if (entry.input.value !== shown(row.value)) entry.input.value = shown(row.value);
    if ((valueChanged && entry.seen && kind !== "saved") || missed.has(row.name)) {
      changedNames.push(row.label);
      highlight(entry, row);
    }
    entry.seen = true;
  }
  if (kind === "state" && missed.size && changedNames.length) {
    $("save-result").textContent = `While you were away: ${changedNames.join(", ")} changed.`;
  }
  $("notes-card").hidden = typeof state.notes !== "string";
  $("notes").textContent = typeof state.notes === "string" ? state.notes : "";
  $("account-view").dataset.version = String(state.version);
  updateButtons();
}

function whoText(by) {
  if (by === "you") return "You";
  if (by === "support" || !by) return "Support";
  return by;
}

function highlight(entry, row) {
  entry.box.classList.remove("flash");
  void entry.box.offsetWidth; // restart the animation
  entry.box.classList.add("flash");
  entry.note.classList.add("changed");
  entry.note.textContent = `Updated by ${row.by === "you" ? "you" : row.by === "support"
    || !row.by ? "support" : row.by} just now`;
  setTimeout(() => {
    entry.box.classList.remove("flash");
    entry.note.classList.remove("changed");
    if (!entry.dirty) entry.note.textContent = entry.row.writable ? "" : "Only support can change this.";
  }, 4000);
}

function onInput(entry) {
  const dirty = entry.input.value !== shown(entry.row.value);
  if (dirty && !entry.dirty) entry.base = entry.row.version;
  entry.dirty = dirty;
  entry.input.classList.toggle("dirty", dirty);
  if (!dirty) {
    entry.note.classList.remove("changed");
    entry.note.textContent = entry.row.writable ? "" : "Only support can change this.";
  }
  $("save-result").textContent = "";
  updateButtons();
}

function updateButtons() {
  const any = [...fields.values()].some((e) => e.dirty);
  $("save").disabled = !any;
  $("discard").disabled = !any;
}

function discard() {
  for (const entry of fields.values()) {
    if (!entry.dirty) continue;
    entry.input.value = shown(entry.row.value);
    onInput(entry);
  }
}

let editingTimer = 0;
function sendEditing(name) {
  if (name === editingField) return;
  editingField = name;
  clearTimeout(editingTimer);
  const id = customerId;
  editingTimer = setTimeout(() => {
    if (!id || id !== customerId) return;
    api.request("POST", `api/customers/${encodeURIComponent(id)}/presence`, { field: name })
      .catch(() => {}); // presence is best effort: the stream may be reconnecting
  }, 150);
}

// --- saving -----------------------------------------------------------------------------

async function onSave(event) {
  event.preventDefault();
  const values = {};
  const base = {};
  for (const [name, entry] of fields) {
    if (!entry.dirty) continue;
    values[name] = entry.input.value;
    base[name] = entry.base ?? entry.row.version;
  }
  await save(values, base);
}

async function save(values, base) {
  if (!Object.keys(values).length) return;
  notice("");
  $("save-result").textContent = "Saving…";
  let result;
  try {
    result = await api.request("POST",
      `api/customers/${encodeURIComponent(customerId)}/fields`, { values, base });
  } catch (err) {
    $("save-result").textContent = "";
    if (err.code === "write_forbidden") {
      const names = (err.body.fields || []).map((n) => fields.get(n)?.row.label || n);
      notice(`Not saved: only support can change ${names.join(", ")}.`, true);
      for (const n of err.body.fields || []) {
        const entry = fields.get(n);
        if (entry) { entry.input.value = shown(entry.row.value); onInput(entry); }
      }
    } else if (err instanceof api.ApiError) {
      notice(`Not saved: ${err.message}`, true);
    } else {
      notice("Not saved: the server cannot be reached. Your changes are kept here; "
        + "save again when the connection is back.", true);
    }
    return;
  }
  for (const name of result.saved) {
    const entry = fields.get(name);
    if (entry) { entry.dirty = false; entry.input.classList.remove("dirty"); }
  }
  for (const item of result.lost) {
    const entry = fields.get(item.field);
    if (entry) { entry.dirty = false; entry.input.classList.remove("dirty"); }
  }
  applyState(result.state, "saved");
  for (const entry of fields.values()) {
    if (!entry.dirty) {
      entry.note.classList.remove("changed");
      entry.note.textContent = entry.row.writable ? "" : "Only support can change this.";
    }
  }
  showConflicts(result.lost);
  $("save-result").textContent = result.saved.length
    ? `Saved: ${result.saved.map((n) => fields.get(n)?.row.label || n).join(", ")}.`
    : result.lost.length ? "Nothing saved." : "No changes to save.";
}

function showConflicts(lost) {
  const box = $("conflicts");
  for (const item of lost) {
    const card = document.createElement("div");
    card.className = "conflict";
    card.setAttribute("role", "alert");
    card.dataset.field = item.field;
    const who = item.by === "you" ? "You (in another window)" : "A support agent";
    const lines = [
      `Your change to ${item.label} was not saved: ${who} changed it at the same time.`,
      `Yours: “${shown(item.yours)}”`,
      `Now: “${shown(item.theirs)}”`,
    ];
    for (const text of lines) {
      const p = document.createElement("p");
      p.textContent = text;
      card.append(p);
    }
    const actions = document.createElement("div");
    actions.className = "actions";
    const mine = document.createElement("button");
    mine.type = "button";
    mine.textContent = `Use mine for ${item.label}`;
    mine.addEventListener("click", async () => {
      card.remove();
      const entry = fields.get(item.field);
      await save({ [item.field]: item.yours }, { [item.field]: entry ? entry.row.version : "" });
    });
    const theirs = document.createElement("button");
    theirs.type = "button";
    theirs.className = "quiet";
    theirs.textContent = "Keep the new value";
    theirs.addEventListener("click", () => { card.remove(); $("save").focus(); });
    actions.append(mine, theirs);
    card.append(actions);
    box.append(card);
  }
  if (lost.length) box.lastElementChild.querySelector("button").focus();
}

// --- presence and activity ----------------------------------------------------------------

function renderPresence(viewers) {
  const el = $("presence");
  const support = viewers.filter((v) => v.support);
  if (!support.length) { el.hidden = true; el.textContent = ""; return; }
  const editing = support.find((v) => v.field_label);
  const names = support.map((v) => v.name).filter(Boolean);
  const who = names.length ? names.join(", ")
    : support.length === 1 ? "A support agent" : `${support.length} support agents`;
  const verb = names.length > 1 || support.length > 1 ? "are" : "is";
  el.textContent = editing
    ? `${who} ${verb} looking at your account now, editing ${editing.field_label}.`
    : `${who} ${verb} looking at your account now.`;
  el.hidden = false;
}

function describe(item) {
  const names = item.fields.map((f) => f.label);
  const groups = new Set(item.fields.map((f) => f.group));
  const own = api.currentUser()?.role === "customer";
  let what;
  if (item.fields.length && groups.size === 1 && groups.has("Address")) what = "address";
  else if (names.length === 1) what = names[0];
  else if (names.length) what = names.slice(0, -1).join(", ") + " and " + names.at(-1);
  else what = "account";
  const subject = `${own ? "Your" : "The"} ${what.toLowerCase()}`;
  const plural = names.length > 1 && what !== "address";
  const by = item.by === "you" ? "you" : item.by === "support" ? "support" : item.by;
  switch (item.kind) {
    case "created": return `${own ? "Your account" : "The account"} was opened by ${by}`;
    case "deleted": return `${own ? "Your account" : "The account"} was closed by ${by}`;
    case "restored": return `${own ? "Your account" : "The account"} was reopened by ${by}`;
    case "commented": return `A comment was added by ${by}`;
    default: return `${subject} ${plural ? "were" : "was"} updated by ${by}`;
  }
}

function ago(seconds) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - seconds));
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(seconds * 1000).toLocaleString();
}

function addActivity(items, replace) {
  if (replace) activity = new Map();
  for (const item of items) activity.set(item.seq, item);
  const list = $("activity");
  list.replaceChildren();
  const sorted = [...activity.values()].sort((a, b) => b.seq - a.seq).slice(0, 20);
  for (const item of sorted) {
    const li = document.createElement("li");
    const text = document.createElement("span");
    text.textContent = describe(item) + ", ";
    const time = document.createElement("time");
    time.dateTime = new Date(item.time * 1000).toISOString();
    time.dataset.unix = String(item.time);
    time.textContent = ago(item.time);
    li.append(text, time);
    list.append(li);
  }
  $("activity-empty").hidden = sorted.length > 0;
}

function renderActivityTimes() {
  for (const time of $("activity").querySelectorAll("time")) {
    time.textContent = ago(Number(time.dataset.unix));
  }
}

boot();
