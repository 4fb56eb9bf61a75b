// The LiveDrop control panel: sign in with a host token, pick a show, run it.
// Plain ES modules, no framework, no build. Actions go through the host API (api.js); every
// live figure arrives on the host WebSocket channel (channel.js) — the page never polls.

import { h, setText, show } from "/static/shared/dom.js";
import {
  ServerClock,
  clearFragment,
  formatCountdown,
  formatMoney,
  formatPrices,
  formatRate,
  fragmentParams,
  randomId,
  safeImageUrl,
  toMinor,
} from "/static/shared/format.js";
import { ApiError, HostApi } from "./api.js";
import { HostChannel } from "./channel.js";
import { channelSizes, channelStrip, updateChannelSizes, updateChannelStrip } from "./channels.js";
import { ChatPane } from "./chat.js";
import { ImportPanel } from "./imports.js";
import { LiveChart } from "./chart.js";
import {
  addVariantRow,
  mergeStockFrame,
  mergeVariants,
  readVariants,
  updateVariantParts,
  variantLabel,
  variantParts,
} from "./variants.js";

const TOKEN_KEY = "livedrop.hostToken";
const SHOW_KEY = "livedrop.show";
const MAX_ALERTS = 100;
const COUNTERS = [
  ["available", "Available"],
  ["held", "Held"],
  ["sold", "Sold"],
  ["oversold", "Oversold"],
];
const ALERT_LABELS = {
  oversold: "Oversold",
  drop_oversold: "Oversold",
  unmatched_hold: "Unmatched hold",
  dead_delivery: "Webhook failed",
  slow_viewers: "Slow viewers",
};
const END_REASONS = { sold_out: "sold out", time: "time is up", host: "ended by host" };

const $ = (id) => document.getElementById(id);

const state = {
  api: null,
  token: "",
  showId: "",
  show: null,
  order: [],
  drops: new Map(), // id -> model (see upsert)
  cards: new Map(), // id -> card elements
  viewers: 0,
  channel: null,
  chat: null, // the chat pane of the open show (chat.js)
  clock: new ServerClock(),
  chart: null,
  alertIds: new Set(),
  refreshing: null,
  imports: null,
};

// -- sign in and shows ----------------------------------------------------------------------------

async function boot() {
  const params = fragmentParams();
  const fromLink = params.get("token");
  if (fromLink) sessionStorage.setItem(TOKEN_KEY, fromLink);
  if (params.get("show")) sessionStorage.setItem(SHOW_KEY, params.get("show"));
  if (location.hash) clearFragment();
  state.chart = new LiveChart(
    $("chart"),
    [
      { key: "rps", label: "Reservations per second", className: "rps" },
      { key: "sold", label: "Units sold per second", className: "sold" },
    ],
    { title: "Reservations and sales per second" },
  );
  wireForms();
  state.imports = new ImportPanel(refreshShow);
  setInterval(tickCountdowns, 250);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) await signIn(token, sessionStorage.getItem(SHOW_KEY));
  else screen("signin");
}

function screen(name) {
  show($("signin"), name === "signin");
  show($("shows"), name === "shows");
  show($("show"), name === "show");
  show($("session"), name !== "signin");
  show($("switch-show"), name === "show");
  if (name === "signin") $("token-input").focus();
}

async function signIn(token, showId) {
  const api = new HostApi(token);
  let shows;
  try {
    shows = await api.shows();
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    screen("signin");
    setText($("signin-error"), err.status === 401 ? "That host token was not accepted." : `Could not sign in: ${err.message}`);
    return;
  }
  state.api = api;
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  setText($("signin-error"), "");
  if (showId && shows.some((s) => s.show_id === showId)) await openShow(showId);
  else listShows(shows);
}

function signOut() {
  closeShow();
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(SHOW_KEY);
  state.api = null;
  state.token = "";
  $("token-input").value = "";
  screen("signin");
}

function listShows(shows) {
  closeShow();
  const list = $("show-list");
  list.replaceChildren(
    ...shows.map((s) =>
      h(
        "li",
        {},
        h(
          "button",
          { type: "button", class: "show-pick", onclick: () => openShow(s.show_id) },
          h("span", { class: "show-pick-title", text: s.title }),
          h("span", { class: "muted", text: ` ${s.show_id}` }),
          h("span", { class: `badge ${s.state}`, text: s.state }),
        ),
      ),
    ),
  );
  if (!shows.length) list.append(h("li", { class: "muted", text: "No shows yet: create one." }));
  screen("shows");
}

async function chooseShow() {
  try {
    listShows(await state.api.shows());
  } catch (err) {
    toast(`Could not list shows: ${err.message}`);
  }
}

// -- one show -----------------------------------------------------------------------------------------

async function openShow(showId) {
  closeShow();
  state.showId = showId;
  sessionStorage.setItem(SHOW_KEY, showId);
  state.drops = new Map();
  state.cards = new Map();
  state.alertIds = new Set();
  $("live-cards").replaceChildren();
  $("ended-cards").replaceChildren();
  $("alerts").replaceChildren();
  state.chart.clear();
  try {
    await refreshShow();
  } catch (err) {
    toast(`Could not open show ${showId}: ${err.message}`);
    await chooseShow();
    return;
  }
  screen("show");
  renderAlertsEmpty();
  state.chat = new ChatPane(state.api, showId, toast);
  state.imports.attach(state.token, showId); // imports.js: drops from a product feed
  state.channel = new HostChannel(showId, state.token, {
    frame: onFrame,
    status: setConnection,
    refused: (code) => {
      if (code === 1008) signOut();
      else toast("This show no longer exists.");
    },
  });
  state.channel.open();
}

function closeShow() {
  if (state.channel) state.channel.close();
  state.channel = null;
  state.showId = "";
}

/** The show and its drops from the API: descriptions, the run-of-show order, current stock. */
async function refreshShow() {
  if (state.refreshing) return state.refreshing;
  const showId = state.showId;
  state.refreshing = (async () => {
    try {
      const view = await state.api.show(showId);
      if (showId !== state.showId) return;
      state.show = view.show;
      state.order = view.drops.map((d) => d.info.drop_id);
      for (const { info, stock, variants } of view.drops) {
        const known = state.drops.get(info.drop_id);
        const c = stock.counters;
        const d = upsert(info.drop_id, {
          info,
          ...(known
            ? {}
            : {
                state: stock.state,
                endsAt: stock.ends_at_ms,
                reason: stock.end_reason,
                total: c.total,
                available: c.available,
                held: c.held,
                sold: c.sold,
                oversold: c.oversold,
                holdsCreated: stock.holds_created,
                holdsConfirmed: stock.holds_confirmed,
                holdsExpired: stock.holds_expired,
              }),
        });
        // The description only: counters come from the stock below, the channel's frames after.
        mergeVariants(d, (info.variants || []).map(({ id, sku, options }) => ({ id, sku, options })));
        if (!known) mergeVariants(d, variants);
      }
      renderShow();
    } finally {
      state.refreshing = null;
    }
  })();
  return state.refreshing;
}

function upsert(id, fields) {
  const current = state.drops.get(id) || {
    id,
    info: null,
    state: "draft",
    endsAt: 0,
    reason: "",
    total: 0,
    available: 0,
    held: 0,
    sold: 0,
    oversold: 0,
    rps: 0,
    soldPs: 0,
    holdsCreated: 0,
    holdsConfirmed: 0,
    holdsExpired: 0,
  };
  Object.assign(current, fields);
  state.drops.set(id, current);
  return current;
}

// -- frames from the host channel ---------------------------------------------------------------------

function onFrame(frame) {
  switch (frame.type) {
    case "welcome": {
      state.clock.sync(frame.server_time);
      state.viewers = frame.viewers;
      if (state.show) state.show = { ...state.show, title: frame.title, state: frame.state };
      let unknown = false;
      for (const body of frame.drops) {
        if (!state.drops.has(body.id)) unknown = true;
        fromBody(body);
      }
      if (unknown) refreshShow();
      renderShow();
      break;
    }
    case "drop": {
      const known = state.drops.has(frame.drop.id);
      fromBody(frame.drop);
      if (!known || !state.order.includes(frame.drop.id)) refreshShow();
      renderShow();
      break;
    }
    case "stock": {
      const d = state.drops.get(frame.drop);
      if (d) {
        Object.assign(d, { available: frame.available, held: frame.held, sold: frame.sold, total: frame.total });
        mergeStockFrame(d, frame.variants);
        updateCard(d);
      }
      break;
    }
    case "drop_ended": {
      const d = state.drops.get(frame.drop);
      if (d) {
        Object.assign(d, { state: "closed", reason: frame.reason });
        renderShow();
      }
      break;
    }
    case "viewers":
      state.viewers = frame.count;
      setText($("kpi-viewers"), frame.count);
      break;
    case "show":
      if (state.show) state.show = { ...state.show, title: frame.title, state: frame.state };
      renderHead();
      break;
    case "show_ended":
      if (state.show) state.show = { ...state.show, state: "ended" };
      renderHead();
      break;
    case "host_stats":
      onStats(frame);
      break;
    case "alert":
      addAlert(frame);
      break;
    case "channel_sync":
      for (const entry of frame.drops) {
        const d = state.drops.get(entry.drop);
        const card = state.cards.get(entry.drop);
        if (d) Object.assign(d, { channels: entry.channels, channelVariants: entry.variants });
        if (card) showChannels(card, d, entry.channels, entry.variants, frame.server_time);
      }
      break;
    default:
      state.chat?.frame(frame); // chat_history, chat, chat_delete, chat_clear, chat_pin, chat_mode, chat_held
      break;
  }
}

function fromBody(body) {
  const d = upsert(body.id, {
    state: body.state,
    endsAt: body.ends_at,
    total: body.stock.total,
    available: body.stock.available,
    held: body.stock.held,
    sold: body.stock.sold,
  });
  mergeVariants(d, body.variants);
  if (d.info) d.info = { ...d.info, title: body.title, image_url: body.image_url, prices: body.prices, sku: body.sku };
  else d.info = { drop_id: body.id, title: body.title, sku: body.sku, image_url: body.image_url, prices: body.prices, total: body.stock.total, per_customer_limit: body.per_customer_limit };
}

function onStats(frame) {
  state.clock.sync(frame.server_time);
  state.viewers = frame.viewers;
  let changedState = false;
  for (const f of frame.drops) {
    const d = state.drops.get(f.drop);
    if (!d) continue;
    if (d.state !== f.state || d.total !== f.total) changedState = true;
    Object.assign(d, {
      state: f.state,
      total: f.total,
      available: f.available,
      held: f.held,
      sold: f.sold,
      oversold: f.oversold,
      rps: f.reservations_per_second,
      soldPs: f.sold_per_second,
      holdsCreated: f.holds_created,
      holdsConfirmed: f.holds_confirmed,
      holdsExpired: f.holds_expired,
    });
    mergeVariants(d, f.variants);
    updateCard(d);
  }
  if (changedState) renderShow();
  setText($("kpi-viewers"), frame.viewers);
  setText($("kpi-rps"), formatRate(frame.reservations_per_second));
  setText($("kpi-units"), frame.sales.units);
  const revenue = Object.entries(frame.sales.revenue);
  setText($("kpi-revenue"), revenue.length ? revenue.map(([c, v]) => formatMoney(v, c)).join(" · ") : "—");
  state.chart.push({ rps: frame.reservations_per_second, sold: frame.sold_per_second });
}

function setConnection(status) {
  const el = $("conn");
  el.dataset.state = status;
  setText(el, { connecting: "Connecting…", live: "Live", offline: "Reconnecting…" }[status] || status);
}

// -- rendering ------------------------------------------------------------------------------------------

function renderShow() {
  renderHead();
  renderQueue();
  renderCards();
}

function renderHead() {
  const s = state.show;
  if (!s) return;
  setText($("show-title"), s.title);
  setText($("show-id"), s.show_id);
  const badge = $("show-state");
  setText(badge, s.state);
  badge.className = `badge ${s.state}`;
  show($("start-show"), s.state === "scheduled");
  show($("end-show"), s.state === "live");
  setText($("kpi-viewers"), state.viewers);
}

function titleOf(d) {
  return d.info?.title || d.id;
}

function renderQueue() {
  const list = $("queue");
  const focused = document.activeElement?.dataset?.focusKey;
  const drops = state.order.map((id) => state.drops.get(id)).filter(Boolean);
  const next = drops.find((d) => d.state === "draft");
  list.replaceChildren(
    ...drops.map((d, i) => {
      const info = d.info || {};
      const img = safeImageUrl(info.image_url);
      return h(
        "li",
        { class: `queue-item ${d.state}${d === next ? " next" : ""}`, "aria-label": `${i + 1}. ${titleOf(d)}, ${stateLabel(d)}` },
        h("span", { class: "queue-pos", "aria-hidden": "true", text: i + 1 }),
        img ? h("img", { class: "thumb", src: img, alt: "" }) : h("span", { class: "thumb none", "aria-hidden": "true" }),
        h(
          "div",
          { class: "queue-text" },
          h("span", { class: "queue-title", text: titleOf(d) }),
          h("span", {
            class: "muted small",
            text: `${info.sku || ""} · ${formatPrices(info.prices)} · ${d.total} units${variantsNote(info)}`,
            title: `${info.sku || ""} · ${formatPrices(info.prices)} · ${d.total} units${variantsNote(info)}`,
          }),
        ),
        h("span", { class: `badge ${d.state}`, text: d === next ? "next" : stateLabel(d) }),
        h(
          "span",
          { class: "move" },
          h("button", {
            type: "button",
            class: "icon",
            "aria-label": `Move ${titleOf(d)} up`,
            "data-focus-key": `up:${d.id}`,
            disabled: i === 0,
            onclick: () => move(d.id, -1),
            text: "↑",
          }),
          h("button", {
            type: "button",
            class: "icon",
            "aria-label": `Move ${titleOf(d)} down`,
            "data-focus-key": `down:${d.id}`,
            disabled: i === drops.length - 1,
            onclick: () => move(d.id, 1),
            text: "↓",
          }),
        ),
      );
    }),
  );
  show($("no-queue"), drops.length === 0);
  const launch = $("launch-next");
  launch.disabled = !next;
  launch.title = next ? `Launch ${titleOf(next)}` : "Every drop has been launched";
  if (focused) {
    const again = list.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
    if (again && !again.disabled) again.focus();
  }
}

function variantsNote(info) {
  const n = info.variants?.length || 0;
  return n ? ` in ${n} variants` : "";
}

function stateLabel(d) {
  if (d.state === "closed") return "ended";
  return d.state;
}

function renderCards() {
  const live = $("live-cards");
  const ended = $("ended-cards");
  let liveCount = 0;
  let endedCount = 0;
  for (const id of state.order) {
    const d = state.drops.get(id);
    if (!d || d.state === "draft") continue;
    const card = state.cards.get(id) || createCard(d);
    const target = d.state === "live" ? live : ended;
    if (card.root.parentElement !== target) target.append(card.root);
    if (d.state === "live") liveCount += 1;
    else endedCount += 1;
    updateCard(d);
  }
  show($("no-live"), liveCount === 0);
  show($("ended-box"), endedCount > 0);
  setText($("ended-count"), endedCount);
}

function cardId(id, key) {
  return `card-${id}-${key}`;
}

function createCard(d) {
  const values = {};
  const counters = COUNTERS.map(([key, label]) => {
    values[key] = h("span", { class: "counter-value", "aria-labelledby": cardId(d.id, key), text: "0" });
    return h("div", { class: `counter ${key}` }, h("span", { class: "counter-label", id: cardId(d.id, key), text: label }), values[key]);
  });
  const restockInput = h("input", {
    id: cardId(d.id, "restock"),
    type: "number",
    step: "1",
    value: "10",
    inputmode: "numeric",
  });
  const restockForm = h(
    "form",
    { class: "restock", novalidate: true },
    h("label", { for: cardId(d.id, "restock"), text: "Restock units" }),
    restockInput,
    h("button", { type: "submit", text: "Restock" }),
  );
  const variantBits = variantParts(d.id);
  restockForm.insertBefore(variantBits.picker, restockForm.querySelector("button"));
  restockForm.addEventListener("submit", (event) => {
    event.preventDefault();
    restock(d.id, restockInput, variantBits.picker.hidden ? undefined : variantBits.picker.value);
  });
  const endButton = h("button", { type: "button", class: "danger", text: "End drop", onclick: () => endDrop(d.id) });
  const parts = {
    img: h("img", { class: "card-img", alt: "" }),
    title: h("h3", { class: "card-title" }),
    meta: h("p", { class: "muted small" }),
    status: h("p", { class: "card-status" }),
    countdown: h("span", { class: "countdown", role: "timer", "aria-label": "Time left", text: "" }),
    bar: {
      sold: h("span", { class: "seg sold" }),
      held: h("span", { class: "seg held" }),
      available: h("span", { class: "seg available" }),
    },
    rates: h("p", { class: "rates small" }),
    channels: channelStrip(d.id),
    channelSizes: channelSizes(d.id),
    values,
    endButton,
    restockForm,
    variantBits,
  };
  const bar = h("div", { class: "stockbar", "aria-hidden": "true" }, parts.bar.sold, parts.bar.held, parts.bar.available);
  const root = h(
    "article",
    { class: "card", "aria-label": `Drop ${titleOf(d)}` },
    parts.img,
    h(
      "div",
      { class: "card-body" },
      h("div", { class: "card-head" }, h("div", {}, parts.title, parts.meta), parts.countdown),
      parts.status,
      bar,
      h("div", { class: "counters" }, counters),
      variantBits.table,
      parts.rates,
      parts.channels,
      parts.channelSizes.root,
      h("div", { class: "card-actions" }, restockForm, endButton),
    ),
  );
  const card = { root, ...parts };
  state.cards.set(d.id, card);
  return card;
}

function updateCard(d) {
  const card = state.cards.get(d.id);
  if (!card) return;
  const info = d.info || {};
  card.root.setAttribute("aria-label", `Drop ${titleOf(d)}`);
  card.root.dataset.state = d.state;
  const img = safeImageUrl(info.image_url);
  if (img && card.img.getAttribute("src") !== img) card.img.setAttribute("src", img);
  show(card.img, Boolean(img));
  setText(card.title, titleOf(d));
  const limit = info.per_customer_limit ? ` · limit ${info.per_customer_limit}/customer` : "";
  setText(card.meta, `${info.sku || d.id} · ${formatPrices(info.prices)}${limit}`);
  for (const [key] of COUNTERS) setText(card.values[key], d[key]);
  card.values.oversold.parentElement.classList.toggle("alarm", d.oversold > 0);
  updateVariantParts(card.variantBits, d);
  const total = Math.max(1, d.total);
  card.bar.sold.style.width = `${(100 * d.sold) / total}%`;
  card.bar.held.style.width = `${(100 * d.held) / total}%`;
  card.bar.available.style.width = `${(100 * d.available) / total}%`;
  setText(
    card.rates,
    `${formatRate(d.rps)} reservations/s · ${d.holdsCreated} holds, ${d.holdsConfirmed} confirmed, ${d.holdsExpired} expired · ${d.total} units in total`,
  );
  const soldOut = (d.variants || []).filter((v) => v.available === 0).length;
  if (d.state === "live" && d.available > 0 && soldOut > 0) {
    setText(card.status, `On sale · ${soldOut} of ${d.variants.length} variants sold out`);
  } else if (d.state === "live") {
    setText(card.status, d.available === 0 ? "Sold out for now: units come back when holds expire" : "On sale");
  } else {
    setText(card.status, `Ended${d.reason ? ` (${END_REASONS[d.reason] || d.reason})` : ""}`);
  }
  show(card.endButton, d.state === "live");
  if (d.channels) showChannels(card, d, d.channels, d.channelVariants, state.clock.now());
  updateCountdown(d, card);
}

/** A drop card's channel strip: per channel its chip, for a drop with sizes a summary and each size's strip. */
function showChannels(card, d, chips, variants, now) {
  updateChannelStrip(card.channels, chips, now, variants);
  updateChannelSizes(card.channelSizes, variants, now, (id) => {
    const v = (d?.variants || []).find((x) => x.id === id);
    return v ? variantLabel(v) : id;
  });
}

function updateCountdown(d, card) {
  if (d.state !== "live") {
    setText(card.countdown, "");
    return;
  }
  setText(card.countdown, d.endsAt ? formatCountdown(d.endsAt - state.clock.now()) : "no end time");
}

function tickCountdowns() {
  for (const d of state.drops.values()) {
    const card = state.cards.get(d.id);
    if (card && d.state === "live") updateCountdown(d, card);
  }
}

// -- alerts ---------------------------------------------------------------------------------------------

function addAlert(frame) {
  if (state.alertIds.has(frame.id)) return;
  state.alertIds.add(frame.id);
  const list = $("alerts");
  const when = new Date(frame.at);
  const item = h(
    "li",
    { class: `alert ${frame.kind}` },
    h("span", { class: "alert-kind", text: alertTitle(frame) }),
    h("time", { datetime: when.toISOString(), class: "muted small", text: when.toLocaleTimeString() }),
    h("p", { class: "alert-text", text: frame.message }),
  );
  // Newest first; history arrives oldest first, so insert by time.
  const after = [...list.children].find((li) => Number(li.dataset.at) < frame.at);
  item.dataset.at = String(frame.at);
  list.insertBefore(item, after || null);
  while (list.children.length > MAX_ALERTS) list.lastElementChild.remove();
  renderAlertsEmpty();
}

function alertTitle(frame) {
  const label = ALERT_LABELS[frame.kind] || frame.kind;
  const d = frame.drop ? state.drops.get(frame.drop) : null;
  return d ? `${label} · ${titleOf(d)}` : label;
}

function renderAlertsEmpty() {
  show($("no-alerts"), $("alerts").children.length === 0);
}

// -- actions ---------------------------------------------------------------------------------------------

async function act(button, work, errorEl) {
  if (button) button.disabled = true;
  if (errorEl) setText(errorEl, "");
  try {
    return await work();
  } catch (err) {
    const message = err instanceof ApiError ? err.message : String(err);
    if (err instanceof ApiError && err.status === 401) {
      signOut();
      setText($("signin-error"), "The host token is no longer accepted.");
      return undefined;
    }
    if (errorEl) setText(errorEl, message);
    else toast(message);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

async function move(id, step) {
  const order = [...state.order];
  const i = order.indexOf(id);
  const j = i + step;
  if (i < 0 || j < 0 || j >= order.length) return;
  [order[i], order[j]] = [order[j], order[i]];
  state.order = order; // at once, so the list does not jump back while the request runs
  renderQueue();
  const result = await act(null, () => state.api.reorder(state.showId, order), $("queue-error"));
  if (result) state.order = result.drop_ids;
  else await refreshShow();
  renderQueue();
}

async function launchNext() {
  const next = state.order.map((id) => state.drops.get(id)).find((d) => d && d.state === "draft");
  if (!next) return;
  await act($("launch-next"), () => state.api.launch(next.id), $("queue-error"));
  renderQueue();
}

async function endDrop(id) {
  const card = state.cards.get(id);
  await act(card?.endButton, () => state.api.end(id));
}

async function restock(id, input, variant) {
  const delta = Number(input.value);
  if (!Number.isInteger(delta) || delta === 0) {
    toast("Restock by a whole number of units (negative to take units out).");
    return;
  }
  const button = input.form.querySelector("button");
  const snapshot = await act(button, () => state.api.restock(id, delta, randomId("panel-"), variant));
  if (snapshot) {
    const c = snapshot.counters;
    const d = upsert(id, { total: c.total, available: c.available, held: c.held, sold: c.sold, oversold: c.oversold });
    if (variant) {
      // The answer is the drop's; the variant's own counters come with the next stock frame.
      const v = (d.variants || []).find((x) => x.id === variant);
      if (v) Object.assign(v, { total: v.total + delta, available: v.available + delta });
    }
    updateCard(d);
    toast(`${titleOf(d)}${variant ? ` (${variant})` : ""}: ${delta > 0 ? "+" : ""}${delta} units`);
  }
}

async function addDrop(form) {
  const data = new FormData(form);
  const currency = String(data.get("currency") || "").trim().toUpperCase();
  const price = toMinor(data.get("price"), currency);
  const sku = String(data.get("sku") || "").trim();
  const title = String(data.get("title") || "").trim();
  const total = Number(data.get("total"));
  const errorEl = $("add-error");
  const { variants, error } = readVariants($("f-variants"), data.get("variant_option"));
  if (error) return setText(errorEl, error);
  if (!sku || !title) return setText(errorEl, "A drop needs a SKU and a title.");
  if (!/^[A-Z]{3}$/.test(currency)) return setText(errorEl, "Currency is a three-letter ISO code, like EUR.");
  if (!Number.isFinite(price)) return setText(errorEl, "Price is a number like 19.00.");
  const noTotal = String(data.get("total")).trim() === "";
  if (!variants.length && (!Number.isInteger(total) || total < 0 || noTotal)) {
    return setText(errorEl, "Stock is a whole number of units.");
  }
  const slug = sku.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40) || "drop";
  const drop = {
    drop_id: `${slug}-${randomId().slice(0, 6)}`,
    sku,
    title,
    image_url: String(data.get("image_url") || "").trim(),
    prices: { [currency]: price },
    per_customer_limit: Number(data.get("per_customer_limit") || 0),
    hold_seconds: Number(data.get("hold_seconds") || 300),
  };
  if (variants.length) drop.variants = variants; // stocked by its variants: the drop's total is their sum
  else drop.total = total;
  const duration = String(data.get("duration_seconds") || "").trim();
  if (duration) drop.duration_seconds = Number(duration);
  const created = await act(form.querySelector("button[type=submit]"), () => state.api.addDrop(state.showId, drop), errorEl);
  if (created) {
    form.reset();
    form.elements.currency.value = currency;
    $("f-variants").replaceChildren();
    await refreshShow();
    toast(`Added ${created.title} to the run of show`);
  }
}

async function openViewerPage() {
  const viewer = randomId("viewer-").slice(0, 20);
  const minted = await act($("open-viewer"), () => state.api.viewerToken(state.showId, viewer));
  if (minted) {
    const url = `/demo/shows/${encodeURIComponent(state.showId)}#token=${encodeURIComponent(minted.token)}`;
    window.open(url, "_blank", "noopener");
  }
}

// -- wiring ------------------------------------------------------------------------------------------------

function wireForms() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) {
      setText($("signin-error"), "Enter a host token.");
      return;
    }
    await signIn(token, null);
  });
  $("create-show").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const showId = form.elements.show_id.value.trim();
    const title = form.elements.title.value.trim();
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(showId)) {
      setText($("create-show-error"), "A show id is 1–64 letters, digits, - or _.");
      return;
    }
    if (!title) {
      setText($("create-show-error"), "Give the show a title.");
      return;
    }
    const created = await act(form.querySelector("button"), () => state.api.createShow(showId, title), $("create-show-error"));
    if (created) {
      form.reset();
      await openShow(created.show_id);
    }
  });
  $("add-drop").addEventListener("submit", (event) => {
    event.preventDefault();
    addDrop(event.currentTarget);
  });
  $("add-variant").addEventListener("click", () => addVariantRow($("f-variants")).querySelector("input").focus());
  $("launch-next").addEventListener("click", launchNext);
  $("sign-out").addEventListener("click", signOut);
  $("switch-show").addEventListener("click", chooseShow);
  $("open-viewer").addEventListener("click", openViewerPage);
  $("start-show").addEventListener("click", () => act($("start-show"), () => state.api.startShow(state.showId)));
  $("end-show").addEventListener("click", () => act($("end-show"), () => state.api.endShow(state.showId)));
}

let toastTimer = null;
function toast(message) {
  let el = $("toast");
  if (!el) {
    el = h("div", { id: "toast", class: "toast", role: "status", "aria-live": "polite" });
    document.body.append(el);
  }
  setText(el, message);
  el.classList.add("shown");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("shown"), 4000);
}

boot();
