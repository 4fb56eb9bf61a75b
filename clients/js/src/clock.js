// The server's clock as seen from this device. Countdowns (a drop's `ends_at`, a hold's
// `expires_at`) are on the server's clock (Redis' own), and a phone's clock can be minutes off:
// never compare them with Date.now() directly.

/**
 * Offset between the server's clock and this device's, estimated NTP-style: a `pong` answering a
 * `ping` sent at t0 and received at t1 carried a server time taken, at best guess, half-way
 * between the two; the sample with the smallest round trip wins, since its error is bounded by
 * half that round trip. A `welcome` (no request, so no round trip) seeds a coarse estimate.
 */
export class ServerClock {
  /** @param {() => number} [now] the device clock, injectable for tests */
  constructor(now = () => Date.now()) {
    this.local = now;
    this.offset = 0;
    this.rtt = Number.POSITIVE_INFINITY;
    this.synced = false;
  }

  /** A server time read from a frame with no known send time (a `welcome`). */
  seed(serverTime, receivedAt = this.local()) {
    if (!isTime(serverTime)) return;
    // Only until a round-trip sample exists: a one-way reading is worse than any of those.
    if (this.rtt === Number.POSITIVE_INFINITY) {
      this.offset = serverTime - receivedAt;
      this.synced = true;
    }
  }

  /** A server time from an answer to a request sent at `sentAt` and received at `receivedAt`. */
  sample(serverTime, sentAt, receivedAt = this.local()) {
    if (!isTime(serverTime) || !(receivedAt >= sentAt)) return;
    const rtt = receivedAt - sentAt;
    if (rtt > this.rtt) return;
    this.rtt = rtt;
    this.offset = serverTime - (sentAt + rtt / 2);
    this.synced = true;
  }

  /** Forget round-trip samples (a new connection may reach another node, over another path). */
  restart() {
    this.rtt = Number.POSITIVE_INFINITY;
  }

  /** The server's time now, in epoch milliseconds. */
  now() {
    return this.local() + this.offset;
  }

  /** Milliseconds until `deadline` (server epoch ms), never below 0. */
  remainingMs(deadline) {
    return isTime(deadline) ? Math.max(0, deadline - this.now()) : 0;
  }
}

function isTime(value) {
  return typeof value === "number" && Number.isFinite(value) && value > 0;
}

/** States in which a hold or a drop no longer counts down, whatever its deadline said. */
const OVER = new Set(["released", "expired", "confirmed", "closed"]);

/**
 * The deadline a thing counts down to: a number (server epoch ms), a hold (`expiresAt` or the
 * wire's `expires_at`) or a drop (`ends_at`). Undefined when it has none, or is over (a released
 * hold, a closed drop): its countdown is then 0.
 */
export function deadlineOf(target) {
  if (typeof target === "number") return target;
  if (target && typeof target === "object") {
    if (OVER.has(target.state)) return undefined;
    if (typeof target.expiresAt === "number") return target.expiresAt;
    if (typeof target.expires_at === "number") return target.expires_at;
    if (typeof target.ends_at === "number") return target.ends_at;
  }
  return undefined;
}
