// The size picker of the demo viewer page: one button per variant of a drop with variants
// (docs/protocol.md, "Drops with variants"), sold-out sizes greyed out. The
// buttons are built once per drop and then only updated, so a stock frame never replaces a button
// under a finger. A sold-out size is greyed out but can still be picked, to join its waitlist.

import { isSoldOut } from "/client/index.js";
import { h, show } from "/static/shared/dom.js";

/** What a picker calls a variant: its option values ("42", "Red / M"), else its id. */
export function variantLabel(v) {
  const values = Object.values(v.options || {});
  return values.length ? values.join(" / ") : v.id;
}

/** The picker's legend: the options' names ("Size", "Colour / size"). */
function legendOf(d) {
  const names = Object.keys(d.variants[0]?.options || {});
  const text = names.length ? names.join(" / ") : "option";
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * Show the picker for drop `d` in `box` (hidden for a drop without variants); `chosen` is the
 * picked variant id; `onPick(id)` is called on a tap.
 */
export function renderSizes(box, d, chosen, onPick) {
  const variants = d?.variants || [];
  show(box, variants.length > 0);
  if (!variants.length) return;
  const key = `${d.id}|${variants.map((v) => v.id).join(",")}`;
  if (box.dataset.key !== key) {
    box.dataset.key = key;
    box.replaceChildren(
      h("legend", { text: legendOf(d) }),
      h(
        "div",
        { class: "sizes", role: "group", "aria-label": legendOf(d) },
        variants.map((v) =>
          h("button", { type: "button", class: "size", "data-variant": v.id, onclick: () => onPick(v.id) }, variantLabel(v)),
        ),
      ),
    );
  }
  for (const button of box.querySelectorAll("button.size")) {
    const id = button.dataset.variant;
    const v = variants.find((x) => x.id === id);
    const out = isSoldOut(d, id);
    // Greyed, yet still pickable: a sold-out size offers its own waitlist.
    button.classList.toggle("sold-out", out);
    button.setAttribute("aria-pressed", String(id === chosen));
    button.setAttribute("aria-label", out ? `${variantLabel(v)}, sold out` : variantLabel(v));
    button.title = out ? "Sold out" : `${v.stock.available} left`;
  }
}

/** The stock a drop's meter shows: the picked variant's, else the drop's (all variants). */
export function stockShown(d, chosen) {
  const v = chosen ? d.variants?.find((x) => x.id === chosen) : undefined;
  return v ? { ...v.stock, label: variantLabel(v) } : { ...d.stock, label: "" };
}

/** The prices a drop's price line shows: the picked variant's own, else the drop's. */
export function pricesShown(d, chosen) {
  const v = chosen ? d.variants?.find((x) => x.id === chosen) : undefined;
  return v?.prices || d.prices;
}
