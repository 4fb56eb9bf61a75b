// Drops with variants on the panel: each variant's counters on its drop card, a restock that
// names the variant, and the rows of the add-drop form that define variants (option, SKU, stock).
// A drop without variants shows none of this.

import { h, setText, show } from "/static/shared/dom.js";

const VARIANT_ID = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;
const SKU = /^[A-Za-z0-9_.:/+=-]{1,128}$/;

/** What a picker and a card call a variant: its option values ("42", "Red / M"), else its id. */
export function variantLabel(v) {
  const values = Object.values(v.options || {});
  return values.length ? values.join(" / ") : v.id;
}

/** Merge per-variant figures (from the API, a drop body, a stock frame or host_stats) into a drop's model. */
export function mergeVariants(d, updates) {
  if (!updates) return;
  const list = d.variants || [];
  const byId = new Map(list.map((v) => [v.id, v]));
  for (const u of updates) {
    const id = u.id ?? u.variant;
    const current = byId.get(id) || { id, sku: "", options: {}, total: 0, available: 0, held: 0, sold: 0, oversold: 0 };
    const stock = u.stock?.counters || u.stock || u;
    Object.assign(current, {
      sku: u.sku ?? current.sku,
      options: u.options ?? current.options,
      total: stock.total ?? current.total,
      available: stock.available ?? current.available,
      held: stock.held ?? current.held,
      sold: stock.sold ?? current.sold,
      oversold: stock.oversold ?? current.oversold,
    });
    if (!byId.has(id)) {
      byId.set(id, current);
      list.push(current);
    }
  }
  d.variants = list;
}

/** The per-variant counters of a stock frame: { s41: {available, …}, … } into a drop's model. */
export function mergeStockFrame(d, byVariant) {
  if (!byVariant) return;
  mergeVariants(
    d,
    Object.entries(byVariant).map(([id, c]) => ({ id, ...c })),
  );
}

/** The card's table of variants (hidden for a drop without) and the restock form's variant picker. */
export function variantParts(dropId) {
  const body = h("tbody");
  const table = h(
    "table",
    { class: "variants", "aria-label": "Variants", hidden: true },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Variant", "SKU", "Available", "Held", "Sold", "Oversold"].map((t) => h("th", { scope: "col", text: t })),
      ),
    ),
    body,
  );
  const picker = h("select", { id: `card-${dropId}-restock-variant`, "aria-label": "Variant to restock", hidden: true });
  return { table, body, picker };
}

/** Bring a card's variant table and picker up to date with the drop's model. */
export function updateVariantParts(parts, d) {
  const variants = d.variants || [];
  show(parts.table, variants.length > 0);
  show(parts.picker, variants.length > 0);
  if (!variants.length) return;
  const rows = parts.body.children;
  variants.forEach((v, i) => {
    let row = rows[i];
    if (!row || row.dataset.variant !== v.id) {
      row = h(
        "tr",
        { "data-variant": v.id },
        h("th", { scope: "row", class: "variant-name" }),
        h("td", { class: "sku" }),
        ...["available", "held", "sold", "oversold"].map((k) => h("td", { class: k })),
      );
      if (rows[i]) rows[i].replaceWith(row);
      else parts.body.append(row);
    }
    setText(row.children[0], variantLabel(v));
    setText(row.children[1], v.sku);
    ["available", "held", "sold", "oversold"].forEach((k, j) => setText(row.children[2 + j], v[k] ?? 0));
    row.classList.toggle("sold-out", d.state === "live" && v.available === 0);
    row.children[5].classList.toggle("alarm", (v.oversold ?? 0) > 0);
  });
  while (rows.length > variants.length) rows[rows.length - 1].remove();
  const ids = variants.map((v) => v.id).join(",");
  if (parts.picker.dataset.ids !== ids) {
    const chosen = parts.picker.value;
    parts.picker.replaceChildren(...variants.map((v) => h("option", { value: v.id, text: variantLabel(v) })));
    if (variants.some((v) => v.id === chosen)) parts.picker.value = chosen;
    parts.picker.dataset.ids = ids;
  }
}

// -- the add-drop form's variant rows ------------------------------------------------------------------

let rowSeq = 0;

/** Add one row (option value, SKU, stock) to the form's variant list. */
export function addVariantRow(list, values = {}) {
  rowSeq += 1;
  const n = rowSeq;
  const field = (name, label, attrs) =>
    h(
      "span",
      { class: "field" },
      h("label", { for: `v-${name}-${n}`, text: label }),
      h("input", { id: `v-${name}-${n}`, name: `variant_${name}`, ...attrs }),
    );
  const row = h(
    "li",
    { class: "variant-row" },
    field("value", "Size / option", { maxlength: "80", placeholder: "42", value: values.value ?? "" }),
    field("sku", "Variant SKU", { maxlength: "128", placeholder: "SNK-42", value: values.sku ?? "" }),
    field("stock", "Variant stock", { type: "number", min: "0", step: "1", placeholder: "20", value: values.stock ?? "" }),
    h("button", {
      type: "button",
      class: "icon",
      "aria-label": "Remove this variant",
      text: "✕",
      onclick: () => row.remove(),
    }),
  );
  list.append(row);
  return row;
}

/** The form's variants as the API takes them, or a message saying what is wrong. None: []. */
export function readVariants(list, optionName) {
  const name = (optionName || "size").trim() || "size";
  const rows = [...list.querySelectorAll(".variant-row")];
  const variants = [];
  const seen = new Set();
  for (const row of rows) {
    const value = row.querySelector('[name="variant_value"]').value.trim();
    const sku = row.querySelector('[name="variant_sku"]').value.trim();
    const stockText = row.querySelector('[name="variant_stock"]').value.trim();
    if (!value && !sku && !stockText) continue; // an empty row is no variant
    const quantity = Number(stockText);
    if (!value) return { error: "Each variant needs a value, like 42 or M." };
    if (!SKU.test(sku)) return { error: `Variant ${value}: a SKU of letters, digits and _ . : / + = -.` };
    if (stockText === "" || !Number.isInteger(quantity) || quantity < 0) {
      return { error: `Variant ${value}: stock is a whole number of units.` };
    }
    const id = variantId(value, seen);
    seen.add(id);
    variants.push({ id, sku, quantity, options: { [name]: value } });
  }
  return { variants };
}

/** A variant id from its option value: "42" -> "v42", "XL" -> "XL", unique within the drop. */
function variantId(value, seen) {
  let base = value.replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 28) || "v";
  if (!/^[A-Za-z]/.test(base)) base = `v${base}`.slice(0, 28);
  let id = base;
  for (let i = 2; seen.has(id) || !VARIANT_ID.test(id); i += 1) id = `${base}-${i}`;
  return id;
}
