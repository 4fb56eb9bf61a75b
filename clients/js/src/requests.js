// Requests in flight, matched to their answers by `ref` (pure: timers are injected).
//
// A ref is chosen once, by the client, and kept until an answer arrives or the caller gives up:
// a request whose answer was lost with a connection is sent again on the next one with the SAME
// ref, and the server (idempotent on ref) answers it as it did the first time, never with a
// second hold.

const REF_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Which answer frames settle which request, and how. */
const ANSWERS = {
  reserve: { ok: "reserved", rejected: true },
  release: { ok: "released", rejected: false },
  waitlist: { ok: "waitlisted", rejected: true },
  ping: { ok: "pong", rejected: false },
  // chat (docs/protocol.md, "Chat"): taken, or refused with a code (slow mode, a ban, ...)
  chat_send: { ok: "chat_ack", rejected: false, refused: true },
  chat_mod: { ok: "chat_ack", rejected: false, refused: true },
};

/** Why a request failed: `rejected` (with `reason`), `error` (with `code`), `timeout` or `closed`. */
export class RequestError extends Error {
  constructor(kind, { ref, request, frame, reason, code, message } = {}) {
    super(message || describe(kind, reason, code));
    this.name = "RequestError";
    this.kind = kind;
    this.ref = ref;
    this.request = request;
    this.frame = frame;
    this.reason = reason;
    this.code = code;
  }

  /** True when the server refused the frame for the per-connection rate limit: retry later. */
  get rateLimited() {
    return this.code === "rate_limited";
  }
}

function describe(kind, reason, code) {
  if (kind === "rejected") return `rejected: ${reason}`;
  if (kind === "error") return `error: ${code}`;
  if (kind === "timeout") return "no answer in time";
  return "the client was closed";
}

let counter = 0;

/** A fresh request id: a prefix, a counter and 64 random bits (unique across tabs and reloads). */
export function newRef(prefix = "r") {
  counter += 1;
  const bytes = new Uint8Array(8);
  const crypto = globalThis.crypto;
  if (crypto && typeof crypto.getRandomValues === "function") crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i += 1) bytes[i] = Math.floor(Math.random() * 256);
  const random = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${prefix}-${counter.toString(36)}-${random}`;
}

/** Throws a TypeError for a ref the server would refuse (so the caller learns before sending). */
export function checkRef(ref) {
  if (typeof ref !== "string" || !REF_PATTERN.test(ref) || ref === "waitlist") {
    throw new TypeError(`ref must be 1-64 characters of A-Z a-z 0-9 _ . : - (and not "waitlist"), got ${JSON.stringify(ref)}`);
  }
  return ref;
}

export class Requests {
  /**
   * @param {{timeoutMs?: number, setTimeout?: typeof setTimeout, clearTimeout?: typeof clearTimeout}} [options]
   */
  constructor(options = {}) {
    this.timeoutMs = options.timeoutMs ?? 10000;
    this.setTimeout = options.setTimeout ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimeout = options.clearTimeout ?? ((id) => clearTimeout(id));
    /** @type {Map<string, any>} ref -> entry, in the order the requests were made */
    this.entries = new Map();
  }

  /**
   * Register a request frame (which must carry its `ref`). The promise settles with the answer
   * frame, or a RequestError; `timeoutMs` counts from now, across reconnects.
   */
  add(frame, timeoutMs = this.timeoutMs) {
    const kind = ANSWERS[frame.type];
    if (!kind) throw new TypeError(`not a request: ${frame.type}`);
    if (this.entries.has(frame.ref)) throw new Error(`a request with ref ${frame.ref} is already in flight`);
    let entry;
    const promise = new Promise((resolve, reject) => {
      entry = { ref: frame.ref, frame, sentAt: undefined, sends: 0, resolve, reject, timer: undefined };
    });
    if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
      entry.timer = this.setTimeout(() => {
        if (this.entries.get(entry.ref) !== entry) return;
        this.entries.delete(entry.ref);
        entry.reject(new RequestError("timeout", { ref: entry.ref, request: entry.frame }));
      }, timeoutMs);
    }
    this.entries.set(frame.ref, entry);
    return { entry, promise };
  }

  /** Requests still waiting for an answer, oldest first: what a new connection must (re)send. */
  pending() {
    return [...this.entries.values()];
  }

  /** Record that `entry` went out on a connection at `at` (device ms). */
  sent(entry, at) {
    entry.sentAt = at;
    entry.sends += 1;
  }

  /**
   * Settle the request `frame` answers, if it is one of ours and of the right kind; returns its
   * entry, or undefined (an answer for another tab's request, a waitlist hand-out, an error
   * without ref: the caller surfaces those as events).
   */
  answer(frame) {
    if (typeof frame.ref !== "string") return undefined;
    const entry = this.entries.get(frame.ref);
    if (!entry) return undefined;
    const kind = ANSWERS[entry.frame.type];
    let outcome;
    if (frame.type === kind.ok && !frame.from_waitlist) outcome = () => entry.resolve(frame);
    else if (frame.type === "rejected" && kind.rejected)
      outcome = () => entry.reject(new RequestError("rejected", { ref: entry.ref, request: entry.frame, frame, reason: frame.reason }));
    else if (frame.type === "chat_rejected" && kind.refused)
      outcome = () =>
        entry.reject(new RequestError("rejected", { ref: entry.ref, request: entry.frame, frame, reason: frame.code, code: frame.code === "rate_limited" ? "rate_limited" : undefined, message: `${frame.code}: ${frame.message}` }));
    else if (frame.type === "error")
      outcome = () =>
        entry.reject(new RequestError("error", { ref: entry.ref, request: entry.frame, frame, code: frame.code, message: `${frame.code}: ${frame.message}` }));
    else return undefined;
    this.entries.delete(entry.ref);
    if (entry.timer !== undefined) this.clearTimeout(entry.timer);
    outcome();
    return entry;
  }

  /** Fail every request still waiting (the client was closed for good). */
  failAll(kind = "closed", message = undefined) {
    const entries = this.pending();
    this.entries.clear();
    for (const entry of entries) {
      if (entry.timer !== undefined) this.clearTimeout(entry.timer);
      entry.reject(new RequestError(kind, { ref: entry.ref, request: entry.frame, message }));
    }
  }
}
