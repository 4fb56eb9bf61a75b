// The sales channels' strip on a live drop card: one chip per channel (Shopify, TikTok Shop, Meta,
// WooCommerce) saying whether it holds LiveDrop's stock (in sync), is being updated (catching up)
// or refuses it (failing), with how long ago it last acknowledged a value. Fed by `channel_sync`
// frames of the host channel (docs/channels.md); a drop no channel sells shows no strip.
//
// A drop with variants (sizes) gets one summary chip per channel (the worst state of its sizes,
// the units all its sizes show there, the oldest acknowledgement): hovering it lists each size, and
// "Channels per size" under the strip opens one strip per size.

import { h, setText, show } from "/static/shared/dom.js";

const NAMES = { shopify: "Shopify", tiktok: "TikTok Shop", meta: "Meta", woocommerce: "WooCommerce" };
const SYNC = { in_sync: "in sync", catching_up: "catching up", failing: "failing" };

/** An empty strip for a drop card (or, with `label`, for one of its sizes). */
export function channelStrip(dropId, label = "Sales channels") {
  return h("ul", { class: "channel-strip", "aria-label": label, "data-drop": dropId, hidden: true });
}

function age(ms) {
  if (ms < 0) return "just now";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

function stateText(chip, now) {
  let text = SYNC[chip.sync] || chip.sync;
  if (chip.sync === "failing") text += ` · ${chip.error}`;
  else if (chip.sync === "catching_up" && chip.pending_since) text += ` · ${age(now - chip.pending_since)}`;
  else if (chip.at) text += ` · ${chip.value} · ${age(now - chip.at)}`;
  return text;
}

/** Each size's state on `channel`, one line per size, for a summary chip's hover. */
function sizesTitle(channel, variants, now) {
  return variants
    .map((v) => {
      const chip = v.channels.find((c) => c.channel === channel);
      return chip ? `${v.sku}: ${stateText(chip, now)}` : null;
    })
    .filter(Boolean)
    .join("\n");
}

/** Show `chips` (the drop's entry of a channel_sync frame) in `strip`; `now` is the server clock.
 * `variants` (the entry's, for a drop with sizes) makes the chips summaries of those sizes. */
export function updateChannelStrip(strip, chips, now, variants) {
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
    let text = stateText(chip, now);
    if (variants && variants.length) {
      const sizes = variants.filter((v) => v.channels.some((c) => c.channel === chip.channel)).length;
      text += ` · ${sizes} size${sizes === 1 ? "" : "s"}`;
      li.dataset.sizes = String(sizes);
      li.title = [chip.message, sizesTitle(chip.channel, variants, now)].filter(Boolean).join("\n");
      li.dataset.ids = "";
    } else {
      // Hovering a chip shows why it fails, else the SKU's ids on that channel (its mapping).
      const ids = Object.entries(chip.ids || {}).map(([k, v]) => `${k} ${v}`).join(", ");
      li.title = chip.message || ids;
      li.dataset.ids = ids;
      delete li.dataset.sizes;
    }
    setText(li.querySelector(".chip-state"), text);
  }
  for (const stale of items.values()) stale.remove();
}

/** The per-size detail under a drop card's strip: collapsed, one strip per size. */
export function channelSizes(dropId) {
  const list = h("ul", { class: "channel-sizes-list", "aria-label": "Sales channels per size" });
  const root = h("details", { class: "channel-sizes", "data-drop": dropId, hidden: true }, h("summary", { text: "Channels per size" }), list);
  return { root, list, dropId };
}

/** Show each size of `variants` (a channel_sync entry's) with its own strip; `label(id)` names a size. */
export function updateChannelSizes(parts, variants, now, label) {
  show(parts.root, Boolean(variants && variants.length));
  if (!variants) return;
  const rows = new Map([...parts.list.children].map((li) => [li.dataset.variant, li]));
  for (const v of variants) {
    let li = rows.get(v.variant);
    const name = label(v.variant);
    if (!li) {
      li = h(
        "li",
        { "data-variant": v.variant },
        h("span", { class: "size-name" }),
        channelStrip(parts.dropId, `Sales channels of ${name}`),
      );
      parts.list.append(li);
    }
    rows.delete(v.variant);
    setText(li.querySelector(".size-name"), `${name} · ${v.sku}`);
    updateChannelStrip(li.querySelector(".channel-strip"), v.channels, now);
  }
  for (const stale of rows.values()) stale.remove();
}
