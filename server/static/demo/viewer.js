// The demo viewer page: a phone-sized web player on the JavaScript viewer client
// (clients/js, served at /client/), which speaks the public viewer protocol (docs/protocol.md):
// it connects, resumes, keeps the show's snapshot and the server clock, and matches answers to
// requests. This page only decides what to show: the live drop, the buy button, the hold timer,
// and the sold-out / waitlist / expired / confirmed states. A viewer token comes in the URL
// fragment (#token=…), which browsers never send to a server; without one the page watches.

import { connect, isSoldOut } from "/client/index.js";
import { ChatBox } from "./chat.js";
import { h, setText, show } from "/static/shared/dom.js";
import { clearFragment, formatCountdown, formatPrices, fragmentParams, safeImageUrl } from "/static/shared/format.js";
import { pricesShown, renderSizes, stockShown, variantLabel } from "./sizes.js";

const $ = (id) => document.getElementById(id);
const showId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const tokenKey = `livedrop.viewer.${showId}`;
const checkoutEnabled = document.body.dataset.checkout === "on";
const SWITCH_AFTER_END_MS = 5000;
const END_REASONS = { sold_out: "It sold out.", time: "Time is up.", host: "The host ended it." };
const REJECTED_STATUS = { sold_out: "soldout", limit_exceeded: "limit", not_live: "idle", available: "idle" };

const state = {
  token: "",
  client: null,
  current: null,
  mine: new Map(), // drop id -> {status, hold, expiresAt, qty, position, reason, variant}
  size: new Map(), // drop id -> the variant picked (a drop with variants)
  actionKey: "",
  holdTimer: null,
  switchTimer: null,
  chat: null,
};

/** The show as the client keeps it (drops, stock, viewers, title). */
const snap = () => state.client.snapshot;

function boot() {
  const fromLink = fragmentParams().get("token");
  if (fromLink) sessionStorage.setItem(tokenKey, fromLink);
  if (location.hash) clearFragment();
  state.token = sessionStorage.getItem(tokenKey) || "";
  if (!state.token) {
    setText($("notice"), "Watching only: open this page from a link with a viewer token (the panel's “Open viewer page”) to buy.");
  }
  // The token rides in Sec-WebSocket-Protocol, never in the URL (URLs end up in logs); the
  // client asks for it before every connection, so a refused one is dropped below and the page
  // goes on watching without it.
  const client = connect(`/ws/shows/${encodeURIComponent(showId)}`, { token: () => state.token });
  state.client = client;
  client.on("state", ({ state: now }) => document.body.classList.toggle("offline", now !== "open"));
  client.on("close", onClose);
  client.on("change", onChange);
  state.chat = new ChatBox(client); // chat frames, send, claim codes (chat.js)
  state.chat.onCodes = () => render();
  client.on("waitlisted", (frame) => {
    state.mine.set(frame.drop, { status: "waitlisted", position: frame.position, variant: frame.variant });
    render();
  });
  client.on("error", (frame) => {
    if (!frame.ref) setText($("notice"), frame.message); // answers to our requests are handled where they were made
  });
  setInterval(tick, 250);
}

function onClose({ meaning }) {
  if (meaning === "unknown_show") {
    setText($("notice"), "This show does not exist.");
  } else if (meaning === "unauthorized" || meaning === "token_expired") {
    // The token is expired or for another show (refused in the handshake, or closed later when
    // it expires): keep watching without it.
    sessionStorage.removeItem(tokenKey);
    state.token = "";
    setText($("notice"), "Your viewer link has expired: you can watch, but ask for a new link to buy.");
  }
}

// -- frames (already applied to the client's snapshot) ----------------------------------------------

function onChange(frame) {
  switch (frame.type) {
    case "welcome": {
      const current = snap().drops.get(state.current);
      if (!current || current.state !== "live") state.current = latestLive();
      break;
    }
    case "drop":
      if (frame.drop.state === "live") state.current = frame.drop.id; // a new drop takes the stage
      break;
    case "drop_ended":
      if (frame.drop === state.current) scheduleSwitch();
      break;
    case "show_ended":
      setText($("notice"), "The show has ended. Thanks for watching!");
      break;
    case "reserved":
      state.mine.set(frame.drop, {
        // A retried request's answer says what became of its hold since (docs/protocol.md, "Idempotency").
        status: frame.state && frame.state !== "held" ? frame.state : "held",
        hold: frame.hold,
        qty: frame.qty,
        expiresAt: frame.expires_at,
        fromWaitlist: frame.from_waitlist,
        variant: frame.variant,
        checkoutUrl: storeLink(frame.checkout_url),
      });
      if (frame.variant) state.size.set(frame.drop, frame.variant);
      if (frame.from_waitlist) state.current = frame.drop;
      break;
    case "released":
      for (const [dropId, mine] of state.mine) if (mine.hold === frame.hold) state.mine.set(dropId, { status: "released" });
      break;
    case "hold_expired":
      state.mine.set(frame.drop, { status: "expired" });
      break;
    case "confirmed":
      state.mine.set(frame.drop, { status: "confirmed", qty: frame.qty });
      break;
    default:
      break;
  }
  render();
}

function latestLive() {
  let best = null;
  for (const d of snap().drops.values()) if (d.state === "live" && (!best || d.ends_at > best.ends_at)) best = d;
  return best ? best.id : null;
}

/** After the current drop ends, leave its "ended" card up a moment, then show another live one. */
function scheduleSwitch() {
  clearTimeout(state.switchTimer);
  state.switchTimer = setTimeout(() => {
    const mine = state.mine.get(state.current);
    const busy = mine && (mine.status === "held" || mine.status === "paying");
    const next = latestLive();
    if (!busy && next) {
      state.current = next;
      render();
    }
  }, SWITCH_AFTER_END_MS);
}

// -- actions ----------------------------------------------------------------------------------------------

/** A refused request: its reason on the card, or its message in the notice. */
function refused(dropId, error) {
  if (error.kind === "rejected") {
    state.mine.set(dropId, { status: REJECTED_STATUS[error.reason] || "idle", reason: error.reason });
  } else {
    const mine = state.mine.get(dropId);
    if (mine && mine.status === "pending") state.mine.set(dropId, { status: "idle" });
    const text = error.rateLimited ? "Easy! Too many taps: try again in a second." : error.kind === "timeout" ? "No answer: try again." : error.message;
    setText($("notice"), text);
  }
  render();
}

/** The variant picked for a drop with variants (undefined for a drop without). */
function picked(dropId) {
  const d = snap().drops.get(dropId);
  return d?.variants?.length ? state.size.get(dropId) : undefined;
}

function pick(dropId, variant) {
  state.size.set(dropId, variant);
  const mine = state.mine.get(dropId);
  // A refusal was about the size picked before, and a waitlist place is another size's: a new
  // size starts afresh (the server keeps the waitlist place; a unit that comes back still arrives).
  const stale =
    ["soldout", "limit", "idle", "released", "expired"].includes(mine?.status) ||
    (mine?.status === "waitlisted" && mine.variant !== variant);
  if (stale) state.mine.delete(dropId);
  render();
}

function buy(dropId) {
  // While reconnecting, the request waits and goes out (once) on the next connection.
  const variant = picked(dropId);
  state.client.reserve(dropId, 1, variant ? { variant } : {}).catch((error) => refused(dropId, error));
  state.mine.set(dropId, { status: "pending" });
  if (state.token) setText($("notice"), "");
  render();
}

function release(dropId) {
  const mine = state.mine.get(dropId);
  if (mine?.hold) state.client.release(mine.hold).catch((error) => setText($("notice"), error.message));
}

function joinWaitlist(dropId) {
  const variant = picked(dropId);
  state.client.waitlist(dropId, 1, variant ? { variant } : {}).catch((error) => refused(dropId, error));
}

async function pay(dropId) {
  const mine = state.mine.get(dropId);
  if (!mine?.hold) return;
  state.mine.set(dropId, { ...mine, status: "paying" });
  render();
  try {
    const response = await fetch("/demo/checkout", {
      method: "POST",
      headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ show: showId, hold: mine.hold }),
    });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      throw new Error(problem.detail || problem.title || `HTTP ${response.status}`);
    }
    const result = await response.json();
    state.mine.set(dropId, { status: "confirmed", qty: result.qty });
  } catch (err) {
    const now = state.mine.get(dropId);
    if (now?.status === "paying") state.mine.set(dropId, { ...mine, status: "held" });
    setText($("notice"), `Payment failed: ${err.message}`);
  }
  render();
}

// -- rendering -----------------------------------------------------------------------------------------------

function render() {
  const { title, viewers, drops } = snap();
  setText($("show-title"), title || "Live show");
  document.title = `${title || "Live show"} · LiveDrop`;
  setText($("watching"), `${viewers.toLocaleString()} watching`);
  const d = state.current ? drops.get(state.current) : null;
  state.chat?.setDrop(d);
  show($("waiting"), !d);
  show($("drop"), Boolean(d));
  renderOthers(d);
  if (!d) return;
  const img = safeImageUrl(d.image_url);
  const image = $("drop-image");
  if (image.getAttribute("src") !== img && img) image.setAttribute("src", img);
  show(image, Boolean(img));
  $("drop").classList.toggle("noimg", !img);
  setText($("drop-initial"), (d.title || "?").trim().charAt(0).toUpperCase());
  setText($("drop-title"), d.title);
  const code = state.chat ? state.chat.code(d.id) : "";
  setText($("drop-code"), code);
  show($("drop-code"), Boolean(code));
  const chosen = picked(d.id);
  setText($("drop-price"), formatPrices(pricesShown(d, chosen)));
  renderSizes($("sizes"), d, chosen, (variant) => pick(d.id, variant));
  const { available, total, label } = stockShown(d, chosen);
  const share = total ? available / total : 0;
  $("stock-fill").style.width = `${Math.round(share * 100)}%`;
  const meter = $("stock-meter");
  const left = `${available} of ${total} left${label ? ` in ${label}` : ""}`;
  meter.setAttribute("aria-valuenow", share.toFixed(2));
  meter.setAttribute("aria-valuetext", left);
  const text = $("stock-text");
  setText(text, left);
  text.classList.toggle("low", share <= 0.1);
  renderAction(d);
  tick();
}

function renderOthers(current) {
  const others = [...snap().drops.values()].filter((d) => d.state === "live" && d !== current);
  show($("others-box"), others.length > 0);
  $("others").replaceChildren(
    ...others.map((d) =>
      h(
        "li",
        {},
        h(
          "button",
          { type: "button", class: "secondary", onclick: () => { state.current = d.id; render(); } },
          safeImageUrl(d.image_url) ? h("img", { src: safeImageUrl(d.image_url), alt: "" }) : null,
          h("span", { text: `${d.title} · ${formatPrices(d.prices)}` }),
        ),
      ),
    ),
  );
}

/** The checkout link of a hold, if it is an http(s) URL (never a javascript: one), else "". */
function storeLink(url) {
  if (!url) return "";
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : "";
  } catch {
    return "";
  }
}

/**
 * The buy area is rebuilt only when what it shows changes (not on every stock frame, which can
 * come ten times a second): a button replaced under a finger would swallow the tap.
 */
function renderAction(d) {
  const mine = state.mine.get(d.id) || { status: "idle" };
  const sized = Boolean(d.variants?.length);
  const chosen = picked(d.id);
  const soldOut = isSoldOut(d, chosen);
  const needsSize = sized && !chosen;
  const sizeLabel = (id) => {
    const v = id ? d.variants?.find((x) => x.id === id) : undefined;
    return v ? ` · ${variantLabel(v)}` : "";
  };
  const canReserve = snap().canReserve;
  const key = [d.id, d.state, mine.status, mine.hold, mine.position, soldOut, canReserve, checkoutEnabled, chosen, needsSize].join("|");
  if (key === state.actionKey) return;
  state.actionKey = key;
  state.holdTimer = null;
  const area = $("action");
  const buyButton = (label = "Buy now") =>
    h("button", { type: "button", onclick: () => buy(d.id), disabled: !canReserve, text: label });
  const parts = [];
  if (mine.status === "confirmed") {
    parts.push(
      h("div", { class: "state good" }, h("p", { class: "title", text: "Order confirmed ✓" }), h("p", { text: `${mine.qty || 1} × ${d.title} is yours.` })),
    );
    if (d.state !== "live") parts.push(h("p", { class: "muted", text: "This drop has ended." }));
  } else if (mine.status === "held" || mine.status === "paying") {
    state.holdTimer = h("p", { class: "hold-timer", role: "timer", "aria-label": "Hold time left" });
    parts.push(
      h(
        "div",
        { class: "state held" },
        h("p", { class: "title", text: `${mine.fromWaitlist ? "A unit came back: it's yours!" : "Reserved for you"}${sizeLabel(mine.variant)}` }),
        state.holdTimer,
        h("p", { class: "muted", text: "Pay before the timer runs out, or the unit goes back on sale." }),
      ),
      h(
        "div",
        { class: "row" },
        mine.checkoutUrl
          ? // The merchant's store, in a new tab: this page keeps the hold timer running (docs/checkout.md).
            h("a", { class: "button", href: mine.checkoutUrl, target: "_blank", rel: "noopener", text: "Checkout" })
          : checkoutEnabled
            ? h("button", { type: "button", onclick: () => pay(d.id), disabled: mine.status === "paying", text: mine.status === "paying" ? "Paying…" : "Pay now" })
            : h("p", { class: "muted", text: "Checkout continues in the shop." }),
        h("button", { type: "button", class: "secondary", onclick: () => release(d.id), disabled: mine.status === "paying", text: "Release" }),
      ),
    );
  } else if (d.state !== "live") {
    parts.push(
      h("div", { class: "state" }, h("p", { class: "title", text: "This drop has ended" }), h("p", { class: "muted", text: END_REASONS[d.end_reason] || "Stay tuned for the next one." })),
    );
  } else if (mine.status === "waitlisted") {
    parts.push(
      h(
        "div",
        { class: "state" },
        h("p", { class: "title", text: `You're #${mine.position} on the waitlist${sizeLabel(mine.variant)}` }),
        h("p", { class: "muted", text: "If a unit comes back, it is held for you automatically." }),
      ),
    );
  } else if (soldOut && !needsSize) {
    parts.push(
      h("div", { class: "state bad" }, h("p", { class: "title", text: `Sold out${sizeLabel(chosen)}` }), h("p", { class: "muted", text: "Units come back when other viewers' holds expire." })),
      h("button", { type: "button", class: "secondary", onclick: () => joinWaitlist(d.id), disabled: !canReserve, text: "Join waitlist" }),
    );
  } else {
    if (mine.status === "expired") {
      parts.push(h("div", { class: "state bad" }, h("p", { class: "title", text: "Your hold expired" }), h("p", { class: "muted", text: "The unit went back on sale. You can try again." })));
    } else if (mine.status === "limit") {
      parts.push(h("div", { class: "state bad" }, h("p", { class: "title", text: "Limit reached" }), h("p", { class: "muted", text: `This drop allows ${d.per_customer_limit} per customer.` })));
    } else if (mine.status === "released") {
      parts.push(h("p", { class: "muted", text: "You released your hold." }));
    }
    const pending = mine.status === "pending";
    const label = needsSize ? "Pick a size" : pending ? "Reserving…" : mine.status === "expired" ? "Buy again" : "Buy now";
    const button = buyButton(label);
    if (pending || needsSize) button.disabled = true;
    parts.push(button);
    if (needsSize && soldOut) parts.push(h("p", { class: "muted", text: "Every size is sold out: pick one to join its waitlist." }));
    if (!canReserve) parts.push(h("p", { class: "muted", text: "You are watching without a viewer token." }));
  }
  area.replaceChildren(...parts);
}

/** Countdowns on the server's clock, which the client estimates from welcome and pong frames. */
function tick() {
  const d = state.current ? snap().drops.get(state.current) : null;
  if (!d) return;
  const countdown = $("countdown");
  if (d.state === "live" && d.ends_at) setText(countdown, `Ends in ${formatCountdown(state.client.remainingMs(d))}`);
  else setText(countdown, d.state === "live" ? "" : "Ended");
  const mine = state.mine.get(d.id);
  if (state.holdTimer && mine?.expiresAt) setText(state.holdTimer, formatCountdown(state.client.remainingMs(mine.expiresAt)));
}

boot();
