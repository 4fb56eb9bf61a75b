// The socket shell around the pure parts: connects, reconnects with jittered exponential backoff,
// resumes from the last `seq` and `epoch`, re-sends unanswered requests with their own refs, and
// keeps the snapshot and the server clock current. Nothing here depends on a browser or Node:
// the WebSocket constructor and the timers can be injected.

import { ServerClock, deadlineOf } from "./clock.js";
import { checkHandshake, refusalMeaning } from "./handshake.js";
import { RequestError, Requests, checkRef, newRef } from "./requests.js";
import { Applied, Snapshot } from "./snapshot.js";

/** The subprotocol of this protocol version; the token rides as a second one. */
export const SUBPROTOCOL = "livedrop.v1";

/** Close codes the server uses (docs/protocol.md, "Close codes"). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  BAD_DATA: 1007,
  POLICY: 1008,
  TOO_BIG: 1009,
  KEEPALIVE_TIMEOUT: 1011,
  RESTART: 1012,
  TRY_AGAIN: 1013,
  TOKEN_EXPIRED: 4401,
  UNKNOWN_SHOW: 4404,
});

const MEANINGS = new Map([
  [1000, { meaning: "normal", reconnect: true }],
  [1001, { meaning: "going_away", reconnect: true }],
  [1003, { meaning: "bad_data", reconnect: false }],
  [1006, { meaning: "network", reconnect: true }],
  [1007, { meaning: "bad_data", reconnect: false }],
  [1008, { meaning: "unauthorized", reconnect: false }],
  [1009, { meaning: "too_big", reconnect: false }],
  [1011, { meaning: "keepalive_timeout", reconnect: true }],
  [1012, { meaning: "restart", reconnect: true }],
  [1013, { meaning: "slow", reconnect: true }],
  [4401, { meaning: "token_expired", reconnect: false }],
  [4404, { meaning: "unknown_show", reconnect: false }],
]);

/**
 * Close codes after which the token hook, if any, is asked for a new token (once, until a frame
 * arrives again): a token refused after the upgrade, or one that expired on an open connection.
 * With a static token the client stops: it never reconnects with a token the server refused.
 */
const AUTH_CLOSES = new Set([1008, 4401]);

/**
 * What a close code means and whether reconnecting can help. Unknown codes reconnect: a code
 * added later by the server (a token expiry, say) is better met by a new attempt, which asks the
 * token hook again, than by giving up.
 */
export function closeMeaning(code) {
  return MEANINGS.get(code) ?? { meaning: "unknown", reconnect: true };
}

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential, capped, with "equal jitter"
 * (half fixed, half random) so a node restart does not bring every viewer back in the same
 * millisecond, yet nobody retries at once in a loop.
 */
export function backoffDelay(attempt, { initialMs = 500, maxMs = 15000, factor = 2 } = {}, random = Math.random) {
  const base = Math.min(maxMs, initialMs * factor ** Math.max(0, attempt));
  return base / 2 + random() * (base / 2);
}

/** Open a client on `url` (ws://host/ws/shows/<show>, or http(s), or a path in a browser). */
export function connect(url, options = {}) {
  const client = new LiveDropClient(url, options);
  client.start();
  return client;
}

export class LiveDropClient {
  constructor(url, options = {}) {
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.WebSocket !== "function") {
      throw new TypeError("no WebSocket: pass options.WebSocket (Node 20: run with --experimental-websocket, or the ws package)");
    }
    this.url = toWebSocketUrl(url);
    this.options = options;
    this.token = options.token;
    this.random = options.random ?? Math.random;
    this.setTimer = options.setTimeout ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = options.clearTimeout ?? ((id) => clearTimeout(id));
    this.snapshot = new Snapshot();
    this.clock = new ServerClock(options.now);
    this.requests = new Requests({ timeoutMs: options.requestTimeoutMs ?? 10000, setTimeout: this.setTimer, clearTimeout: this.clearTimer });
    this.listeners = new Map();
    /** @type {"idle" | "connecting" | "open" | "reconnecting" | "closed"} */
    this.state = "idle";
    this.socket = null;
    this.attempt = 0;
    this.authFailures = 0;
    this.generation = 0;
    this.reconnectTimer = undefined;
    this.syncTimer = undefined;
    this.resyncFrom = null;
    this.tokenUsed = undefined;
    this.fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    /** Whether the current socket opened: a close before it did is a failed handshake. */
    this.opened = false;
    this.attemptToken = undefined;
  }

  // -- lifecycle ---------------------------------------------------------------------------------

  start() {
    if (this.state !== "idle") return;
    this.setState("connecting");
    void this.open();
  }

  /** Close for good: no reconnect; requests still waiting fail with kind `closed`. */
  close() {
    if (this.state === "closed") return;
    this.generation += 1;
    this.stopTimers();
    const socket = this.socket;
    this.socket = null;
    this.setState("closed");
    if (socket) closeQuietly(socket);
    this.requests.failAll("closed");
  }

  /** Drop the connection and connect again now, resuming (after a network change, say). */
  reconnect() {
    if (this.state === "closed") return;
    this.stopTimers();
    const socket = this.socket;
    this.socket = null;
    if (socket) closeQuietly(socket);
    this.setState("reconnecting");
    void this.open();
  }

  /**
   * Replace the token (a string) or the token hook (a function, sync or async, called before
   * every connection attempt; return "" or null to watch without one). Takes effect on the next
   * connection: call `reconnect()` to use it at once.
   */
  setToken(token) {
    this.token = token;
    this.authFailures = 0;
  }

  async open() {
    const generation = ++this.generation;
    let token;
    try {
      token = typeof this.token === "function" ? await this.token() : this.token;
    } catch (error) {
      if (generation !== this.generation || this.state === "closed") return;
      this.emit("close", { code: 0, reason: `token hook failed: ${error}`, meaning: "token_hook", willReconnect: true });
      this.scheduleReconnect();
      return;
    }
    if (generation !== this.generation || this.state === "closed") return;
    const protocols = token ? [SUBPROTOCOL, `livedrop.token.${token}`] : [SUBPROTOCOL];
    // Resume only with the same standing: a welcome must tell whether this connection may reserve.
    const resume = this.tokenUsed === Boolean(token);
    this.tokenUsed = Boolean(token);
    let socket;
    try {
      socket = new this.WebSocket(this.connectUrl(resume), protocols);
    } catch (error) {
      this.emit("close", { code: 0, reason: String(error), meaning: "network", willReconnect: true });
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    this.opened = false;
    this.attemptToken = token;
    socket.onopen = () => this.onOpen(socket);
    socket.onmessage = (event) => this.onMessage(socket, event);
    socket.onclose = (event) => this.onClose(socket, event.code, event.reason);
    // After an open socket's error a close event follows, with the code. A handshake that fails
    // may only get the error (Node 20's WebSocket never closes a refused one): handle it as a
    // close, and the close that may follow is ignored (the socket is no longer ours).
    socket.onerror = () => {
      if (!this.opened) this.onClose(socket, CloseCode.ABNORMAL, "");
    };
  }

  connectUrl(resume = true) {
    const url = new URL(this.url);
    const { seq, epoch } = this.snapshot;
    if (resume && seq !== null && epoch) {
      url.searchParams.set("resume_from", String(seq));
      url.searchParams.set("epoch", epoch);
    }
    return url.toString();
  }

  onOpen(socket) {
    if (socket !== this.socket) return;
    this.opened = true;
    this.setState("open");
    this.clock.restart();
    this.resyncFrom = null;
    // Oldest first, with their own refs: the server answers a repeated ref as it did the first time.
    for (const entry of this.requests.pending()) this.sendEntry(entry);
    this.syncClock();
  }

  onMessage(socket, event) {
    if (socket !== this.socket) return;
    let frame;
    try {
      frame = JSON.parse(typeof event.data === "string" ? event.data : String(event.data));
    } catch {
      this.emit("protocol_error", { message: "a frame that is not JSON", data: event.data });
      return;
    }
    if (!frame || typeof frame !== "object" || typeof frame.type !== "string") {
      this.emit("protocol_error", { message: "a frame without a type", data: frame });
      return;
    }
    // The server talks to us: the next failure starts the backoff over.
    this.attempt = 0;
    this.authFailures = 0;
    this.handle(frame);
  }

  /** Apply one frame: snapshot first, then the request it answers, then the listeners. */
  handle(frame) {
    if (frame.type === "welcome") this.clock.seed(frame.server_time);
    const result = this.snapshot.apply(frame);
    if (result === Applied.DUPLICATE) return;
    if (result === Applied.GAP) {
      this.resync();
      return;
    }
    if (frame.type === "welcome" || this.snapshot.seq !== this.resyncFrom) this.resyncFrom = null;
    const entry = this.requests.answer(frame);
    if (entry && frame.type === "pong" && entry.sentAt !== undefined) this.clock.sample(frame.server_time, entry.sentAt);
    this.emit(frame.type, frame);
    if (frame.type === "welcome" && frame.reset) this.emit("reset", frame);
    if (result === Applied.APPLIED) this.emit("change", frame);
  }

  /**
   * An event skipped a seq. The server promises this never happens; should it, ask for the
   * missing ones (`hello` rewinds the connection to our last seq) and ignore what overtook them.
   */
  resync() {
    const { seq, epoch } = this.snapshot;
    if (this.resyncFrom === seq) return;
    if (this.send({ type: "hello", resume_from: seq, epoch: epoch ?? "" })) this.resyncFrom = seq;
  }

  onClose(socket, code, reason) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.stopTimers();
    if (this.state === "closed") return;
    if (!this.opened) {
      // Never opened: the network, or a refusal in the handshake, which a browser does not show.
      void this.onHandshakeFailed(code, reason);
      return;
    }
    this.afterClose(code, reason, closeMeaning(code), AUTH_CLOSES.has(code));
  }

  /** Ask the server why the handshake failed (a refusal says so over plain HTTP), then go on. */
  async onHandshakeFailed(code, reason) {
    const generation = this.generation;
    const verdict = await checkHandshake(this.url, this.attemptToken, this.fetch);
    if (generation !== this.generation || this.state === "closed") return;
    const info = verdict ? refusalMeaning(verdict.status) : { meaning: "network", reconnect: true };
    const extra = { handshake: true, status: verdict?.status ?? 0, problem: verdict?.problem ?? null };
    this.afterClose(code, reason ?? "", info, verdict?.status === 401 || verdict?.status === 403, extra);
  }

  afterClose(code, reason, info, auth, extra = {}) {
    let willReconnect = info.reconnect;
    if (auth && typeof this.token === "function") {
      // The hook may have a fresh token (or choose to watch without one): one more try, not a loop.
      this.authFailures += 1;
      willReconnect = this.authFailures <= 1;
    }
    this.emit("close", { code, reason: reason ?? "", meaning: info.meaning, willReconnect, ...extra });
    if (willReconnect) {
      this.scheduleReconnect();
    } else {
      this.setState("closed");
      this.requests.failAll("closed", `connection closed: ${info.meaning} (${extra.status || code})`);
    }
  }

  scheduleReconnect() {
    if (this.state === "closed") return;
    this.setState("reconnecting");
    const delay = backoffDelay(this.attempt, this.options.backoff, this.random);
    this.attempt += 1;
    this.clearTimer(this.reconnectTimer);
    this.reconnectTimer = this.setTimer(() => {
      this.reconnectTimer = undefined;
      void this.open();
    }, delay);
  }

  stopTimers() {
    if (this.reconnectTimer !== undefined) this.clearTimer(this.reconnectTimer);
    if (this.syncTimer !== undefined) this.clearTimer(this.syncTimer);
    this.reconnectTimer = undefined;
    this.syncTimer = undefined;
  }

  /** A ping now (its pong refines the clock offset), and again every `clockSyncMs` (0: never). */
  syncClock() {
    const every = this.options.clockSyncMs ?? 30000;
    if (every <= 0 || this.state !== "open") return;
    this.ping().catch(() => {});
    this.syncTimer = this.setTimer(() => {
      this.syncTimer = undefined;
      this.syncClock();
    }, every);
  }

  setState(state) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.emit("state", { state, previous });
  }

  // -- requests ----------------------------------------------------------------------------------

  send(frame) {
    const socket = this.socket;
    if (!socket || socket.readyState !== 1 || this.state !== "open") return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  sendEntry(entry) {
    const at = this.clock.local();
    if (this.send(entry.frame)) this.requests.sent(entry, at);
  }

  request(frame, timeoutMs) {
    if (this.state === "closed") return Promise.reject(new RequestError("closed", { ref: frame.ref, request: frame }));
    const { entry, promise } = this.requests.add(frame, timeoutMs);
    this.sendEntry(entry); // or, when not open, on the next connection
    return promise;
  }

  /**
   * Reserve `qty` units of `drop`. Resolves with the `reserved` frame; rejects with a
   * RequestError (`rejected` + reason, `error` + code, `timeout`, `closed`). One call is one tap
   * on Buy: its ref is new unless you pass `ref` (to retry a call that timed out, pass its ref).
   */
  reserve(drop, qty = 1, { ref, timeoutMs, variant } = {}) {
    const frame = { type: "reserve", ref: ref === undefined ? newRef("r") : checkRef(ref), drop, qty };
    if (variant !== undefined) frame.variant = variant; // a drop with variants needs one (docs/protocol.md)
    return this.request(frame, timeoutMs);
  }

  /** Release a hold (its id, or the hold object). Resolves with the `released` frame. */
  release(hold, { ref, timeoutMs } = {}) {
    const id = typeof hold === "string" ? hold : hold?.hold;
    return this.request({ type: "release", hold: id, ref: ref === undefined ? newRef("l") : checkRef(ref) }, timeoutMs);
  }

  /** Join a drop's waitlist. Resolves with the `waitlisted` frame (its `position`). */
  waitlist(drop, qty = 1, { ref, timeoutMs, variant } = {}) {
    const frame = { type: "waitlist", drop, qty, ref: ref === undefined ? newRef("w") : checkRef(ref) };
    if (variant !== undefined) frame.variant = variant; // each variant has its own waitlist
    return this.request(frame, timeoutMs);
  }

  /**
   * Post a chat message. Resolves with the `chat_ack` frame (`status` posted, held or duplicate);
   * rejects with a RequestError of kind `rejected` whose `reason` is the `chat_rejected` code
   * (`slow_mode`, `timeout`, `banned`, ...; the frame has `retry_after` / `until`). A message that
   * is a claim (`SOLD A 2`) is also answered like `reserve`, with this ref: listen for `reserved`,
   * `rejected` and `waitlisted`. Retried on a reconnect with the same ref: posted once.
   */
  chat(text, { ref, timeoutMs } = {}) {
    return this.request({ type: "chat_send", ref: ref === undefined ? newRef("c") : checkRef(ref), text }, timeoutMs);
  }

  /** A moderator's action (a token minted with role `moderator`): `delete`, `timeout`, `pin`, ... */
  moderate(action, fields = {}, { ref, timeoutMs } = {}) {
    return this.request({ type: "chat_mod", action, ...fields, ref: ref === undefined ? newRef("m") : checkRef(ref) }, timeoutMs);
  }

  /** Resolves with the `pong` frame; its round trip refines the server clock. */
  ping({ timeoutMs } = {}) {
    return this.request({ type: "ping", ref: newRef("p") }, timeoutMs);
  }

  // -- reading -----------------------------------------------------------------------------------

  /** The server's time now (epoch ms), as estimated from welcome and pong frames. */
  serverNow() {
    return this.clock.now();
  }

  /** Milliseconds left before a hold expires or a drop ends (or before a server epoch-ms time). */
  remainingMs(target) {
    return this.clock.remainingMs(deadlineOf(target));
  }

  /**
   * Call `onTick(remainingMs)` now and every `intervalMs` until the deadline passes (a last call
   * with 0). Returns a function that stops it.
   */
  countdown(target, onTick, { intervalMs = 250 } = {}) {
    let timer;
    let stopped = false;
    const tick = () => {
      if (stopped) return;
      const left = this.remainingMs(target);
      onTick(left);
      if (left > 0) timer = this.setTimer(tick, Math.min(intervalMs, left));
    };
    tick();
    return () => {
      stopped = true;
      if (timer !== undefined) this.clearTimer(timer);
    };
  }

  // -- events ------------------------------------------------------------------------------------

  /** Subscribe to an event (a frame type, or state/close/change/reset/protocol_error). */
  on(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    this.listeners.get(type)?.delete(listener);
  }

  emit(type, payload) {
    for (const listener of [...(this.listeners.get(type) ?? [])]) {
      try {
        listener(payload);
      } catch (error) {
        // One app listener's bug must not stop the client: rethrow it outside this call stack.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

function closeQuietly(socket) {
  socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
  try {
    socket.close(1000);
  } catch {
    // already closed
  }
}

function toWebSocketUrl(url) {
  const base = globalThis.location?.href;
  const parsed = new URL(String(url), base);
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") throw new TypeError(`not a WebSocket URL: ${url}`);
  return parsed.toString();
}
