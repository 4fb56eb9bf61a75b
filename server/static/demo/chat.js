// The demo viewer page's chat: the show's messages (text only, never HTML), a send box, and a
// claim hint for the drop on screen ("SOLD A 2", or "SOLD A 42 2" for a drop with sizes: docs/chat.md). A moderator's token also gets delete and
// timeout buttons beside each message (chat_mod frames on the same WebSocket).

import { h, setText } from "/static/shared/dom.js";
import { ChatList } from "/static/shared/chat.js";

const $ = (id) => document.getElementById(id);
const REFUSALS = {
  slow_mode: (f) => `Slow mode: wait ${Math.ceil((f.retry_after || 0) / 1000)} s.`,
  rate_limited: () => "Easy! Too many messages.",
  timeout: (f) => `You are timed out until ${new Date(f.until).toLocaleTimeString()}.`,
  banned: () => "You are banned from this chat.",
  blocked: () => "That message was not posted.",
  unauthenticated: () => "Open this page from a viewer link to chat.",
  chat_closed: () => "The chat is closed.",
  claim_unknown_drop: (f) => f.message,
  claim_not_live: () => "Nothing is live to claim right now.",
  claim_variant_required: (f) => f.message,
  claim_unknown_variant: (f) => f.message,
};

/** The word a buyer types for a size: its option values joined by "-" (server/chat/claims.py size_word). */
export function sizeWord(v) {
  const values = Object.values(v.options || {});
  if (!values.length) return v.id;
  return values.map((x) => x.trim().replace(/[\s\/_-]+/g, "-").replace(/^-+|-+$/g, "")).join("-");
}
let refs = 0;

export class ChatBox {
  constructor(client) {
    this.client = client;
    this.drop = null; // the drop on screen: the hint shows how to claim it
    this.list = new ChatList($("chat-list"), $("chat-pinned"), (m) => this.buttons(m));
    for (const type of ["chat_history", "chat", "chat_delete", "chat_clear", "chat_pin", "chat_mode"]) {
      client.on(type, (frame) => {
        this.list.apply(frame);
        this.renderHint();
        if (type === "chat_history" || type === "chat_mode") this.onCodes?.();
      });
    }
    client.on("chat_ack", (frame) => {
      if (frame.status === "held") setText($("chat-status"), "Your message waits for a moderator.");
    });
    client.on("chat_rejected", (frame) => {
      const say = REFUSALS[frame.code];
      setText($("chat-status"), say ? say(frame) : frame.message);
    });
    $("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
  }

  /** The claim code of a drop (the letters shown on its card), or "". */
  code(dropId) {
    return this.list.codes[dropId] || "";
  }

  send() {
    const input = $("chat-input");
    const text = input.value.trim();
    if (!text) return;
    refs += 1;
    const ref = `c-${Date.now().toString(36)}-${refs}`;
    if (this.client.send({ type: "chat_send", ref, text })) {
      input.value = "";
      setText($("chat-status"), "");
    } else {
      setText($("chat-status"), "Reconnecting: try again in a moment.");
    }
  }

  moderate(action, fields) {
    refs += 1;
    this.client.send({ type: "chat_mod", action, ref: `m-${refs}`, ...fields });
  }

  buttons(message) {
    if (this.list.you?.role !== "moderator" || message.role !== "viewer") return [];
    return [
      h("button", { type: "button", class: "mini", onclick: () => this.moderate("delete", { message: message.id }) }, "Delete"),
      h("button", { type: "button", class: "mini", onclick: () => this.moderate("timeout", { message: message.id, seconds: 600 }) }, "Timeout"),
    ];
  }

  /** The drop on screen changed (or its stock did): the hint follows it. */
  setDrop(d) {
    this.drop = d || null;
    this.renderHint();
  }

  renderHint() {
    const keyword = this.list.settings.keyword || "SOLD";
    const d = this.drop;
    if (!d) {
      setText($("chat-hint"), `Type “${keyword}” or “${keyword} A 2” to claim.`);
      return;
    }
    const claim = [keyword, this.code(d.id)].filter(Boolean).join(" ");
    const sizes = d.variants || [];
    if (!sizes.length) {
      setText($("chat-hint"), `Type “${claim}” or “${claim} 2” to claim.`);
      return;
    }
    // A size on sale as the example (any size when all are sold out: a claim then waitlists).
    const example = sizeWord(sizes.find((v) => v.stock?.available > 0) || sizes[0]);
    setText($("chat-hint"), `Type “${claim} ${example}” or “${claim} ${example} 2” to claim (your size instead of ${example}).`);
  }
}
