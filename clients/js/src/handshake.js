// Why a WebSocket handshake failed. A server refuses a bad token (401), a token that does not open
// the show (403) and an unknown show (404) in the handshake itself, with an HTTP status and a
// problem body (docs/protocol.md, "Refusals and close codes"). A browser hides that status from the
// page: the socket just closes with 1006, without `onopen`, as when the network is down. So the
// client asks the same URL over plain HTTP, which answers with the verdict the upgrade got
// (204 when it would be admitted), the token in `Authorization` (never in the URL).

/** What a refused handshake's HTTP status means, and whether reconnecting can help. */
const REFUSALS = new Map([
  [401, { meaning: "unauthorized", reconnect: false }],
  [403, { meaning: "unauthorized", reconnect: false }],
  [404, { meaning: "unknown_show", reconnect: false }],
]);

/** The meaning of a handshake refused with `status` (anything else: the network, try again). */
export function refusalMeaning(status) {
  return REFUSALS.get(status) ?? { meaning: "network", reconnect: true };
}

/** The plain HTTP URL of a viewer WebSocket URL, without its query (resume parameters). */
export function checkUrl(wsUrl) {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.search = "";
  return url.toString();
}

/**
 * Ask the server what it answers the handshake of `wsUrl` with `token`: `{status, problem}`, or
 * null when it cannot be asked (no fetch, the network, a cross-origin page without CORS).
 */
export async function checkHandshake(wsUrl, token, fetchImpl = globalThis.fetch) {
  if (typeof fetchImpl !== "function") return null;
  try {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const response = await fetchImpl(checkUrl(wsUrl), { headers, cache: "no-store" });
    let problem = null;
    if (response.status !== 204) {
      try {
        problem = await response.json();
      } catch {
        problem = null;
      }
    }
    return { status: response.status, problem };
  } catch {
    return null;
  }
}
