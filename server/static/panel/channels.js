// The sales channels' strip on a live drop card: one chip per channel (Shopify, TikTok Shop, Meta,
// WooCommerce) saying whether it holds LiveDrop's stock (in sync), is being updated (catching up)
// or refuses it (failing), with how long ago it last acknowledged a value. Fed by `channel_sync`
// frames of the host channel (docs/channels.md); a drop no channel sells shows no strip.

import { h, setText, show } from "/static/shared/dom.js";

const NAMES = { shopify: "Shopify", tiktok: "TikTok Shop", meta: "Meta", woocommerce: "WooCommerce" };
const SYNC = { in_sync: "in sync", catching_up: "catching up", failing: "failing" };

/** An empty strip for a drop card. */
export function channelStrip(dropId) {
  return h("ul", { class: "channel-strip", "aria-label": "Sales channels", "data-drop": dropId, hidden: true });
}

function age(ms) {
  if (ms < 0) return "just now";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

/** Show `chips` (the drop's entry of a channel_sync frame) in `strip`; `now` is the server clock. */
export function updateChannelStrip(strip, chips, now) {
  show(strip, Boolean(chips && chips.length));
  if (!chips) return;
  const items = new Map([...strip.children].map((li) => [li.dataset.channel, li]));
  for (const chip of chips) {
    let li = items.get(chip.channel);
    if (!li) {
      li = h("li", { class: "chip", "data-channel": chip.channel }, h("span", { class: "chip-name" }), h("span", { class: "chip-state" }));
      strip.append(li);
    }
    items.delete(chip.channel);
    li.dataset.sync = chip.sync;
    setText(li.querySelector(".chip-name"), NAMES[chip.channel] || chip.channel);
    let text = SYNC[chip.sync] || chip.sync;
    if (chip.sync === "failing") text += ` · ${chip.error}`;
    else if (chip.sync === "catching_up" && chip.pending_since) text += ` · ${age(now - chip.pending_since)}`;
    else if (chip.at) text += ` · ${chip.value} · ${age(now - chip.at)}`;
    setText(li.querySelector(".chip-state"), text);
    // Hovering a chip shows why it fails, else the SKU's ids on that channel (its mapping).
    const ids = Object.entries(chip.ids || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    li.title = chip.message || ids;
    li.dataset.ids = ids;
  }
  for (const stale of items.values()) stale.remove();
}
