// Test helpers that run unchanged in Node and in a browser: assertions, a scripted WebSocket
// stand-in (for the pure parts; live cases use the real WebSocket) and manual timers.

export class AssertionError extends Error {}

export function ok(value, message = "expected a truthy value") {
  if (!value) throw new AssertionError(message);
}

export function equal(actual, expected, message = "") {
  if (!Object.is(actual, expected)) {
    throw new AssertionError(`${message ? `${message}: ` : ""}expected ${show(expected)}, got ${show(actual)}`);
  }
}

export function deepEqual(actual, expected, message = "") {
  if (show(actual) !== show(expected)) {
    throw new AssertionError(`${message ? `${message}: ` : ""}expected ${show(expected)}, got ${show(actual)}`);
  }
}

/** Awaits `promise`, which must reject; returns the error for further checks. */
export async function rejects(promise, message = "expected a rejection") {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new AssertionError(message);
}

export function throws(fn, message = "expected a throw") {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new AssertionError(message);
}

function show(value) {
  return JSON.stringify(value, (_, v) => (v instanceof Map ? Object.fromEntries(v) : v));
}

/** Timers fired by the test, never by the wall clock. */
export class ManualTimers {
  constructor() {
    this.now = 0;
    this.next = 1;
    this.pending = new Map();
    this.setTimeout = (fn, ms) => {
      const id = this.next++;
      this.pending.set(id, { fn, at: this.now + ms });
      return id;
    };
    this.clearTimeout = (id) => this.pending.delete(id);
  }

  /** Move the clock forward, firing what falls due, in order. */
  advance(ms) {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.pending.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.pending.delete(due[0]);
      this.now = Math.max(this.now, due[1].at);
      due[1].fn();
    }
    this.now = until;
  }
}

/** A WebSocket stand-in that the test opens, feeds and closes; it records what the client sent. */
export function scriptedSockets() {
  const sockets = [];
  class ScriptedSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = undefined;
      sockets.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error("send on a socket that is not open");
      this.sent.push(JSON.parse(data));
    }
    close(code) {
      this.readyState = 3;
      this.closedWith = code;
    }
    open() {
      this.readyState = 1;
      this.onopen?.({});
    }
    receive(frame) {
      this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
    }
    serverClose(code, reason = "") {
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
    sentOf(type) {
      return this.sent.filter((f) => f.type === type);
    }
  }
  return { sockets, ScriptedSocket };
}

/** Lets promise callbacks (and async token hooks) run. */
export async function settle(rounds = 5) {
  for (let i = 0; i < rounds; i += 1) await Promise.resolve();
}
