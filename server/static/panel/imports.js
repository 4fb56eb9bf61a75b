// Import drops into the show from a product feed (Google Merchant Center, Meta catalog, Shopify
// product CSV): a file or a URL → the server's preview (what would be created, every refused row
// and why) → confirm, which creates all of it or nothing (docs/feeds.md, "Importing into a show").
// Everything shown comes from the file, so it goes in as text nodes (h), never as HTML.

import { h, setText, show } from "/static/shared/dom.js";
import { formatPrices } from "/static/shared/format.js";

const $ = (id) => document.getElementById(id);

export class ImportPanel {
  /** ``onCreated`` runs after a confirm created drops (the panel re-reads the run of show). */
  constructor(onCreated) {
    this.onCreated = onCreated;
    this.token = "";
    this.showId = "";
    this.preview = null;
    $("import-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.requestPreview();
    });
    $("import-confirm").addEventListener("click", () => this.confirm());
    $("import-discard").addEventListener("click", () => this.reset());
  }

  attach(token, showId) {
    this.token = token;
    this.showId = showId;
    this.reset();
  }

  reset() {
    this.preview = null;
    show($("import-preview"), false);
    setText($("import-error"), "");
    setText($("import-status"), "");
  }

  async call(method, path, init = {}) {
    const response = await fetch(`/api/shows/${encodeURIComponent(this.showId)}/${path}`, {
      method,
      ...init,
      headers: { Authorization: `Bearer ${this.token}`, ...(init.headers || {}) },
    });
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) throw new Error(data?.detail || data?.title || `HTTP ${response.status}`);
    return data;
  }

  options(form) {
    const options = {};
    const currency = form.elements.currency.value.trim().toUpperCase();
    if (currency) options.currency = currency;
    const stock = form.elements.default_stock.value.trim();
    if (stock) options.default_stock = Number(stock);
    return options;
  }

  async requestPreview() {
    const form = $("import-form");
    const file = form.elements.file.files[0];
    const url = form.elements.url.value.trim();
    this.reset();
    if (!file && !url) {
      setText($("import-error"), "Choose a feed file or give its URL.");
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    setText($("import-status"), "Reading the feed…");
    try {
      const options = this.options(form);
      let preview;
      if (file) {
        const query = new URLSearchParams(Object.entries(options).map(([k, v]) => [k, String(v)]));
        preview = await this.call("POST", `imports?${query}`, {
          body: file,
          headers: { "Content-Type": file.type || "application/octet-stream" },
        });
      } else {
        preview = await this.call("POST", "imports/url", {
          body: JSON.stringify({ url, ...options }),
          headers: { "Content-Type": "application/json" },
        });
      }
      this.render(preview);
      setText($("import-status"), "");
    } catch (err) {
      setText($("import-status"), "");
      setText($("import-error"), err.message);
    } finally {
      button.disabled = false;
    }
  }

  render(preview) {
    this.preview = preview;
    const variants = preview.drops.reduce((n, d) => n + d.variants.length, 0);
    setText(
      $("import-summary"),
      `${preview.drops.length} drop(s) with ${variants} variant(s) from ${preview.rows_read} row(s) ` +
        `(${preview.format.replace("_", " ")}); ${preview.refused.length} row(s) refused.`,
    );
    const stockOf = (value) => (value === null || value === undefined ? "from default" : String(value));
    $("import-drops").replaceChildren(
      ...preview.drops.map((d) =>
        h(
          "tr",
          {},
          h("td", { text: d.drop_id }),
          h("td", { text: d.title }),
          h("td", { text: formatPrices(d.prices) }),
          h(
            "td",
            { text: d.variants.length ? d.variants.map((v) => `${v.id}: ${stockOf(v.stock)}`).join(", ") : "—" },
          ),
          h("td", { text: d.variants.length ? "" : stockOf(d.stock) }),
        ),
      ),
    );
    $("import-refused").replaceChildren(
      ...preview.refused.map((r) =>
        h(
          "tr",
          {},
          h("td", { text: String(r.line) }),
          h("td", { text: r.source_id || "" }),
          h("td", { text: r.reason }),
          h("td", { text: r.message }),
        ),
      ),
    );
    show($("import-refused-box"), preview.refused.length > 0);
    const missing = preview.missing_stock;
    setText(
      $("import-stock-note"),
      missing ? `${missing} drop(s) or variant(s) have no stock in the feed: set a default stock above.` : "",
    );
    setText($("import-confirm"), `Create ${preview.drops.length} drop(s)`);
    $("import-confirm").disabled = preview.drops.length === 0;
    show($("import-preview"), true);
  }

  async confirm() {
    if (!this.preview) return;
    const button = $("import-confirm");
    const body = {};
    const stock = $("import-form").elements.default_stock.value.trim();
    if (stock) body.default_stock = Number(stock);
    button.disabled = true;
    setText($("import-error"), "");
    try {
      const done = await this.call("POST", `imports/${encodeURIComponent(this.preview.import_id)}/confirm`, {
        body: JSON.stringify(body),
        headers: { "Content-Type": "application/json" },
      });
      show($("import-preview"), false);
      this.preview = null;
      $("import-form").reset();
      setText($("import-status"), `Created ${done.created.length} drop(s).`);
      await this.onCreated();
    } catch (err) {
      setText($("import-error"), err.message);
    } finally {
      button.disabled = false;
    }
  }
}
