// The host WebSocket channel (docs/protocol.md, "Host channel"): every broadcast frame of the
// show plus host_stats and alert frames. The token goes in a first `auth` frame rather than the
// URL, because servers log the URLs of WebSocket handshakes.

const CLOSE_POLICY = 1008;
const CLOSE_UNKNOWN_SHOW = 4404;

export class HostChannel {
  /**
   * handlers: frame(frame), status("connecting" | "live" | "offline"), refused(code, reason)
   */
  constructor(showId, token, handlers) {
    this.showId = showId;
    this.token = token;
    this.handlers = handlers;
    this.socket = null;
    this.closed = false;
    this.attempt = 0;
    this.timer = null;
  }

  open() {
    this.closed = false;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/ws/host/shows/${encodeURIComponent(this.showId)}`;
    this.handlers.status("connecting");
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "auth", token: this.token }));
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === "welcome") {
        this.attempt = 0;
        this.handlers.status("live");
      }
      this.handlers.frame(frame);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.closed) return;
      if (event.code === CLOSE_POLICY || event.code === CLOSE_UNKNOWN_SHOW) {
        this.handlers.status("offline");
        this.handlers.refused(event.code, event.reason);
        return;
      }
      // 1012 (node restarting), 1013 (too slow), a network drop: come back with backoff and
      // jitter, so a fleet of panels does not reconnect in lockstep. A fresh welcome follows.
      this.handlers.status("offline");
      const delay = Math.min(10000, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt += 1;
      this.timer = setTimeout(() => this.open(), delay);
    });
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "bye");
    this.socket = null;
  }
}
