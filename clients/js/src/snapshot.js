// The viewer's picture of a show, built only from frames (pure: no socket, no timers), so an app
// can read it at any time and a test can drive it frame by frame.

/** Frames that carry a per-show `seq` and must be applied once each, in order. */
export const SEQUENCED = new Set(["drop", "drop_ended", "show", "show_ended"]);

/** What `Snapshot.apply` did with a frame. */
export const Applied = Object.freeze({
  APPLIED: "applied", // the frame changed (or confirmed) the snapshot
  DUPLICATE: "duplicate", // a sequenced frame at or below the last seq: ignored
  GAP: "gap", // a sequenced frame beyond last seq + 1: ignored; the client must resume
  OTHER: "other", // not about the snapshot (pong, error, rejected, waitlisted, unknown types)
});

export class Snapshot {
  constructor() {
    /** @type {string | null} */ this.show = null;
    this.title = "";
    this.state = "";
    /** @type {number | null} the last sequenced event applied */ this.seq = null;
    /** @type {string | null} */ this.epoch = null;
    this.viewers = 0;
    this.canReserve = false;
    /** @type {Map<string, any>} drop id -> the drop as the wire describes it, kept current */
    this.drops = new Map();
    /** @type {Map<string, any>} hold id -> this viewer's hold (private answers, kept across resets) */
    this.holds = new Map();
    /** @type {Map<string, number>} drop id -> `ts` of the last stock frame applied */
    this.stockTs = new Map();
  }

  /** Apply one frame from the server. Returns one of `Applied`. */
  apply(frame) {
    if (frame.type === "welcome") return this.welcome(frame);
    if (SEQUENCED.has(frame.type) && typeof frame.seq === "number") {
      if (this.seq !== null) {
        if (frame.seq <= this.seq) return Applied.DUPLICATE;
        if (frame.seq > this.seq + 1) return Applied.GAP;
      }
      this.seq = frame.seq;
    }
    switch (frame.type) {
      case "drop":
        this.drops.set(frame.drop.id, copyDrop(frame.drop));
        this.stockTs.delete(frame.drop.id);
        return Applied.APPLIED;
      case "stock":
        return this.stock(frame);
      case "drop_ended": {
        const drop = this.drops.get(frame.drop);
        if (drop) this.drops.set(frame.drop, { ...drop, state: "closed", end_reason: frame.reason });
        return Applied.APPLIED;
      }
      case "viewers":
        this.viewers = frame.count;
        return Applied.APPLIED;
      case "show":
        this.title = frame.title;
        this.state = frame.state;
        return Applied.APPLIED;
      case "show_ended":
        this.state = "ended";
        return Applied.APPLIED;
      case "reserved":
        this.holds.set(frame.hold, {
          hold: frame.hold,
          drop: frame.drop,
          qty: frame.qty,
          expiresAt: frame.expires_at,
          holdRef: frame.hold_ref,
          checkoutUrl: webLink(frame.checkout_url),
          fromWaitlist: Boolean(frame.from_waitlist),
          // A retried ref is answered with its hold as it is now (docs/protocol.md, "Idempotency").
          state: frame.state ?? "held",
          ...(frame.variant === undefined ? {} : { variant: frame.variant }),
        });
        return Applied.APPLIED;
      case "released":
        return this.holdState(frame.hold, "released");
      case "hold_expired":
        return this.holdState(frame.hold, "expired", frame.drop, undefined, frame.variant);
      case "confirmed":
        return this.holdState(frame.hold, "confirmed", frame.drop, frame.qty, frame.variant);
      default:
        return Applied.OTHER;
    }
  }

  /** A welcome replaces the whole broadcast picture (a reset one too); the viewer's holds stay. */
  welcome(frame) {
    this.show = frame.show;
    this.title = frame.title;
    this.state = frame.state;
    this.seq = frame.seq;
    this.epoch = frame.epoch;
    this.viewers = frame.viewers;
    this.canReserve = Boolean(frame.can_reserve);
    this.drops = new Map((frame.drops || []).map((d) => [d.id, copyDrop(d)]));
    this.stockTs = new Map();
    return Applied.APPLIED;
  }

  /** Stock is conflated and unsequenced: the latest counters win, an older `ts` never does. */
  stock(frame) {
    const drop = this.drops.get(frame.drop);
    if (!drop) return Applied.OTHER;
    const last = this.stockTs.get(frame.drop);
    if (typeof frame.ts === "number") {
      if (last !== undefined && frame.ts < last) return Applied.DUPLICATE;
      this.stockTs.set(frame.drop, frame.ts);
    }
    const { available, held, sold, total } = frame;
    const next = { ...drop, stock: { available, held, sold, total } };
    if (frame.variants && drop.variants) {
      // A drop with variants: each variant's counters come in the same frame, of the same instant.
      next.variants = drop.variants.map((v) => (frame.variants[v.id] ? { ...v, stock: { ...frame.variants[v.id] } } : v));
    }
    this.drops.set(frame.drop, next);
    return Applied.APPLIED;
  }

  holdState(holdId, state, drop, qty, variant) {
    const hold = this.holds.get(holdId);
    if (hold) {
      this.holds.set(holdId, { ...hold, state, ...(qty === undefined ? {} : { qty }) });
    } else if (drop !== undefined) {
      // A push about a hold this client never saw reserved (another tab, or before a reload).
      this.holds.set(holdId, {
        hold: holdId,
        drop,
        qty: qty ?? 0,
        expiresAt: 0,
        holdRef: undefined,
        checkoutUrl: "",
        fromWaitlist: false,
        state,
        ...(variant === undefined ? {} : { variant }),
      });
    }
    return Applied.APPLIED;
  }

  /** A variant of a drop (undefined for a drop without variants, or an unknown variant). */
  variantOf(dropId, variantId) {
    return this.drops.get(dropId)?.variants?.find((v) => v.id === variantId);
  }

  /** This viewer's holds on `dropId`, newest last. */
  holdsOf(dropId) {
    return [...this.holds.values()].filter((h) => h.drop === dropId);
  }
}

/** A drop as the snapshot keeps it: its own copy of the stock, and of each variant's. */
function copyDrop(d) {
  const copy = { ...d, stock: { ...d.stock } };
  if (Array.isArray(d.variants)) copy.variants = d.variants.map((v) => ({ ...v, stock: { ...v.stock } }));
  return copy;
}

/**
 * Whether a drop (or, with `variantId`, one of its variants) has nothing on sale now. A drop with
 * variants is sold out when every variant is; a size picker greys out the sizes that are.
 */
export function isSoldOut(drop, variantId) {
  if (!drop) return true;
  if (variantId !== undefined) {
    const v = drop.variants?.find((x) => x.id === variantId);
    return !v || v.stock.available === 0;
  }
  if (Array.isArray(drop.variants) && drop.variants.length) return drop.variants.every((v) => v.stock.available === 0);
  return drop.stock.available === 0;
}

/**
 * The hold's checkout link as the page may use it in an `href`: an absolute http(s) URL, else "".
 * The server only makes such links; this keeps a `javascript:` one out of a page even so.
 */
function webLink(url) {
  if (typeof url !== "string" || url === "") return "";
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : "";
  } catch {
    return "";
  }
}
