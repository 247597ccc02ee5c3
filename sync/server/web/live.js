// The live channel: Server-Sent Events read with fetch(), so that the access token travels
// in the Authorization header (EventSource cannot send one, and a token in the URL would end
// up in logs). docs/protocol.md, "The live channel (Server-Sent Events)".
//
// Reconnects with capped, jittered backoff and resumes with Last-Event-ID (the last durable
// sequence number seen). When streaming does not work here (a proxy that buffers it: no
// first event in time, twice; or blocks it: three failed attempts while a plain request
// gets through), it falls back to polling the same URL with poll=1, which answers the
// current state and ends, and tries streaming again every minute.

import { accessToken, refresh, sessionId } from "./api.js";

const FIRST_EVENT_MS = 5000;   // a stream that says nothing this long is buffered
const STALL_MS = 40000;        // the server sends a keep-alive every 15 s
const POLL_MS = 4000;
const RETRY_STREAM_MS = 60000; // while polling, try streaming again this often
const MAX_BACKOFF_MS = 8000;

/** Parse SSE text incrementally (the WHATWG event-stream format). */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.reset();
  }
  reset() { this.type = ""; this.data = []; this.id = null; }
  feed(text) {
    this.buffer += text;
    let at;
    while ((at = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, at);
      const eol = this.buffer.startsWith("\r\n", at) ? 2 : 1;
      this.buffer = this.buffer.slice(at + eol);
      this.line(line);
    }
  }
  line(line) {
    if (line === "") {
      if (this.data.length) {
        this.onEvent({ type: this.type || "message", data: this.data.join("\n"), id: this.id });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id") this.id = value;
  }
}

/** Why the channel stopped for good (permission, unknown customer). */
export class Refused extends Error {
  constructor(status, body) {
    super((body && body.message) || `refused (${status})`);
    this.status = status;
    this.body = body || {};
  }
}

export class LiveChannel {
  /**
   * @param {string} customerId
   * @param {{onEvent(type: string, data: any): void, onStatus(state: string): void,
   *          onRefused(err: Refused): void}} handlers
   */
  constructor(customerId, handlers) {
    this.url = `/customers/${encodeURIComponent(customerId)}/events`;
    this.handlers = handlers;
    this.lastId = null;
    this.stopped = false;
    this.polling = false;
    this.buffered = 0;
    this.controller = null;
  }

  start() { this.run(); }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  async run() {
    let failures = 0;
    let pollUntil = 0;
    while (!this.stopped) {
      if (this.polling && Date.now() < pollUntil) {
        await this.pollOnce().catch((err) => this.fail(err));
        await sleep(POLL_MS);
        continue;
      }
      if (!this.polling && failures) this.handlers.onStatus("reconnecting");
      let delivered = false;
      try {
        delivered = await this.streamOnce(this.polling);
      } catch (err) {
        if (this.stopped || err instanceof Refused) { this.fail(err); return; }
      }
      if (this.stopped) return;
      if (delivered) {             // it streamed, then ended (token renewal, server restart)
        this.polling = false;
        failures = 0;
        await sleep(100);
        continue;
      }
      failures += 1;
      if (this.polling || this.buffered >= 2 || failures >= 3) {
        // Streaming does not work here: is the server reachable without it?
        if (await this.pollOnce().then(() => true, (err) => { this.fail(err); return false; })) {
          this.polling = true;
          this.buffered = 0;
          pollUntil = Date.now() + RETRY_STREAM_MS;
          this.handlers.onStatus("polling");
          continue;
        }
        if (this.stopped) return;
      }
      this.handlers.onStatus("reconnecting");
      const cap = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(failures, 5));
      await sleep(failures <= 1 ? 300 + Math.random() * 500 : cap / 2 + Math.random() * cap / 2);
    }
  }

  fail(err) {
    if (err instanceof Refused) { this.stopped = true; this.handlers.onRefused(err); return; }
    if (!this.stopped) this.handlers.onStatus("reconnecting");
  }

  headers() {
    const headers = {
      Authorization: `Bearer ${accessToken()}`,
      "X-Session-Id": sessionId,
      Accept: "text/event-stream",
    };
    if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
    return headers;
  }

  async open(url, signal) {
    let response = await fetch(url, { headers: this.headers(), cache: "no-store", signal });
    if (response.status === 401) {
      try {
        await refresh();
      } catch (err) {
        if (err.status === 401 || err.status === 403) throw new Refused(401, err.body);
        throw err;
      }
      response = await fetch(url, { headers: this.headers(), cache: "no-store", signal });
    }
    if (response.status === 403 || response.status === 404) {
      throw new Refused(response.status, await response.json().catch(() => null));
    }
    if (!response.ok) throw new Error(`live channel answered ${response.status}`);
    return response;
  }

  dispatch(event) {
    let data = null;
    try { data = JSON.parse(event.data); } catch { return; }
    if (event.id) this.lastId = event.id;
    if (event.type === "expired") { refresh().catch(() => {}); return; }
    if (event.type === "revoked") { this.fail(new Refused(401, data)); this.stop(); return; }
    this.handlers.onEvent(event.type, data);
  }

  /** One streaming attempt; resolves true when it delivered events (then ended). */
  async streamOnce(probing) {
    const controller = new AbortController();
    this.controller = controller;
    let delivered = false;
    let timer = setTimeout(() => { this.buffered += 1; controller.abort(); }, FIRST_EVENT_MS);
    const parser = new SseParser((event) => {
      if (!delivered) {
        delivered = true;
        this.buffered = 0;
        this.handlers.onStatus("live");
      }
      this.dispatch(event);
    });
    try {
      const response = await this.open(this.url, controller.signal);
      if (!response.body) { this.buffered = 2; return false; }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (delivered) {
          clearTimeout(timer);
          timer = setTimeout(() => controller.abort(), STALL_MS);
        }
        parser.feed(value);
      }
    } catch (err) {
      if (err instanceof Refused) throw err;
      if (probing && !delivered) this.buffered = Math.max(this.buffered, 2);
    } finally {
      clearTimeout(timer);
      if (this.controller === controller) this.controller = null;
    }
    return delivered;
  }

  /** Polling: the same URL with poll=1 answers the current state and ends. */
  async pollOnce() {
    const response = await this.open(`${this.url}?poll=1`);
    const text = await response.text();
    const parser = new SseParser((event) => this.dispatch(event));
    parser.feed(text + "\n\n");
    this.handlers.onStatus("polling");
  }
}

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }
