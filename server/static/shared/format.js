// Formatting and clock helpers shared by the panel and the demo viewer page.
// Prices travel in minor units per ISO currency ({"EUR": 1900} is 19.00 EUR): no float touches money
// until it is displayed.

const digitsCache = new Map();

/** Fraction digits of a currency (EUR 2, JPY 0), as the browser's Intl data knows them. */
export function minorDigits(currency) {
  if (!digitsCache.has(currency)) {
    let digits = 2;
    try {
      digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
    } catch {
      digits = 2;
    }
    digitsCache.set(currency, digits);
  }
  return digitsCache.get(currency);
}

export function formatMoney(minor, currency) {
  const digits = minorDigits(currency);
  const value = minor / 10 ** digits;
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(value);
  } catch {
    return `${value.toFixed(digits)} ${currency}`;
  }
}

/** "€19.00 · $21.00" from {"EUR": 1900, "USD": 2100}. */
export function formatPrices(prices) {
  const entries = Object.entries(prices || {});
  if (!entries.length) return "No price";
  return entries.map(([currency, minor]) => formatMoney(minor, currency)).join(" · ");
}

/** Minor units from what a person typed ("19", "19.5", "19,50"), or NaN. */
export function toMinor(text, currency) {
  const cleaned = String(text).trim().replace(",", ".");
  if (!/^\d+(\.\d+)?$/.test(cleaned)) return Number.NaN;
  const digits = minorDigits(currency);
  const [whole, fraction = ""] = cleaned.split(".");
  if (fraction.length > digits) return Number.NaN;
  return Number(whole) * 10 ** digits + Number((fraction + "0".repeat(digits)).slice(0, digits) || 0);
}

/** "4:05", "1:02:03"; "0:00" once past. */
export function formatCountdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

export function formatRate(value) {
  return value >= 10 ? value.toFixed(0) : value.toFixed(1);
}

/**
 * The server's clock as seen from here: countdowns are computed from the server's `ends_at`
 * and `server_time`, never from the device's own clock, which may be minutes off.
 */
export class ServerClock {
  constructor() {
    this.offset = 0;
  }
  sync(serverTime) {
    if (typeof serverTime === "number" && serverTime > 0) this.offset = serverTime - Date.now();
  }
  now() {
    return Date.now() + this.offset;
  }
}

/** Image sources a drop may use: this origin, http(s), or inline images. Anything else is dropped. */
export function safeImageUrl(url) {
  if (typeof url !== "string" || !url) return "";
  if (url.startsWith("/") && !url.startsWith("//")) return url;
  if (/^https?:\/\//i.test(url) || /^data:image\//i.test(url)) return url;
  return "";
}

/** A random id for request ids and refs; works outside secure contexts too (a tablet on the LAN). */
export function randomId(prefix = "") {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Key/value pairs of a URL fragment ("#token=…&show=…"). */
export function fragmentParams() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

/** Drop the fragment from the address bar (tokens should not linger in history or screen shares). */
export function clearFragment() {
  history.replaceState(null, "", location.pathname + location.search);
}
