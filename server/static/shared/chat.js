// The chat as a list that both the panel and the demo viewer page keep (docs/chat.md). Every
// piece of chat text goes in as a text node (shared/dom.js `h`), never as HTML: a message that
// says <script> shows the characters "<script>".

import { h } from "/static/shared/dom.js";

export const MAX_SHOWN = 200;
const ROLE_LABELS = { host: "Host", moderator: "Mod", system: "" };

/** Keeps the messages of one show in `n` order in `list` (an <ol>), applying chat frames. */
export class ChatList {
  /** actions(message) -> array of buttons to show beside a message (moderation), or []. */
  constructor(list, pinnedBox, actions = () => []) {
    this.list = list;
    this.pinnedBox = pinnedBox;
    this.actions = actions;
    this.byId = new Map(); // id -> {message, el}
    this.lastN = 0;
    this.codes = {};
    this.settings = { slow_seconds: 0, keyword: "SOLD" };
    this.you = null;
  }

  /** Apply one frame; true if it was a chat frame. */
  apply(frame) {
    switch (frame.type) {
      case "chat_history":
        this.list.replaceChildren();
        this.byId.clear();
        this.lastN = 0;
        this.add(frame.messages);
        this.pin(frame.pinned);
        this.codes = frame.codes || {};
        this.settings = frame.settings || this.settings;
        if (frame.you) this.you = frame.you;
        return true;
      case "chat":
        this.add(frame.messages);
        return true;
      case "chat_delete":
        for (const id of frame.ids) this.remove(id);
        return true;
      case "chat_clear":
        for (const [id, { message }] of [...this.byId]) if (message.n <= frame.upto) this.remove(id);
        return true;
      case "chat_pin":
        this.pin(frame.message);
        return true;
      case "chat_mode":
        this.codes = frame.codes || {};
        this.settings = frame.settings || this.settings;
        return true;
      default:
        return false;
    }
  }

  add(messages) {
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    for (const message of messages) {
      if (this.byId.has(message.id) || message.n <= this.lastN) continue;
      this.lastN = message.n;
      const el = renderMessage(message, this.actions(message));
      this.byId.set(message.id, { message, el });
      this.list.append(el);
    }
    while (this.byId.size > MAX_SHOWN) this.remove(this.byId.keys().next().value);
    if (atBottom) this.list.scrollTop = this.list.scrollHeight;
  }

  remove(id) {
    const found = this.byId.get(id);
    if (!found) return;
    found.el.remove();
    this.byId.delete(id);
  }

  pin(message) {
    if (!this.pinnedBox) return;
    this.pinnedBox.replaceChildren();
    this.pinnedBox.hidden = !message;
    if (message) this.pinnedBox.append(h("span", { class: "pin-mark", "aria-hidden": "true" }, "📌 "), renderLine(message));
  }
}

function renderLine(message) {
  const label = ROLE_LABELS[message.role] ?? "";
  return h(
    "span",
    { class: "chat-line" },
    label ? h("span", { class: `chat-role role-${message.role}` }, label) : null,
    message.role === "system" ? null : h("span", { class: "chat-name", text: message.name }),
    h("span", { class: "chat-text", text: message.text }),
  );
}

export function renderMessage(message, buttons = []) {
  return h(
    "li",
    { class: `chat-msg kind-${message.kind} by-${message.role}`, "data-id": message.id, "data-uid": message.uid },
    renderLine(message),
    buttons.length ? h("span", { class: "chat-actions" }, ...buttons) : null,
  );
}
