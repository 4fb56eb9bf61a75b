// The panel's chat pane: the show's chat live (from the host channel), posting as the host, and
// every moderation action through the host API (/api/shows/{id}/chat/...), with the audit.

import { h, setText } from "/static/shared/dom.js";
import { ChatList } from "/static/shared/chat.js";

const $ = (id) => document.getElementById(id);

export class ChatPane {
  constructor(api, showId, toast) {
    this.api = api;
    this.showId = showId;
    this.toast = toast;
    this.base = `/api/shows/${encodeURIComponent(showId)}/chat`;
    this.list = new ChatList($("chat-list"), $("chat-pinned"), (m) => this.buttons(m));
    this.held = new Map();
    $("chat-list").replaceChildren();
    $("chat-held").replaceChildren();
    $("chat-form").onsubmit = (event) => {
      event.preventDefault();
      this.post();
    };
    $("chat-clear").onclick = () => this.act("POST", "/clear", { reason: "" });
    $("chat-settings").onsubmit = (event) => {
      event.preventDefault();
      this.saveSettings();
    };
    this.loadSettings();
    this.refreshAudit();
  }

  frame(frame) {
    if (frame.type === "chat_held") {
      for (const m of frame.added) this.addHeld(m);
      for (const id of frame.gone) this.removeHeld(id);
      return true;
    }
    const handled = this.list.apply(frame);
    if (handled && frame.type !== "chat" && frame.type !== "chat_history") this.refreshAudit();
    return handled;
  }

  buttons(message) {
    if (message.role === "system" || message.role === "host") {
      return [h("button", { type: "button", class: "mini", onclick: () => this.pin(message.id), title: "Pin" }, "Pin")];
    }
    const target = { message: message.id };
    return [
      h("button", { type: "button", class: "mini", onclick: () => this.act("DELETE", `/messages/${encodeURIComponent(message.id)}`), title: "Delete" }, "Delete"),
      h("button", { type: "button", class: "mini", onclick: () => this.act("POST", "/timeouts", { target, seconds: 600 }), title: "Time out for 10 minutes" }, "Timeout"),
      h("button", { type: "button", class: "mini danger", onclick: () => this.act("POST", "/bans", { target }), title: "Ban from this show's chat" }, "Ban"),
      h("button", { type: "button", class: "mini", onclick: () => this.pin(message.id), title: "Pin" }, "Pin"),
    ];
  }

  pin(id) {
    return this.act("PUT", "/pin", { message: id });
  }

  async act(method, path, body) {
    try {
      await this.api.call(method, this.base + path, body);
    } catch (err) {
      this.toast(`Chat: ${err.message}`);
    }
    this.refreshAudit();
  }

  async post() {
    const input = $("chat-input");
    const text = input.value.trim();
    if (!text) return;
    try {
      await this.api.call("POST", `${this.base}/messages`, { text });
      input.value = "";
    } catch (err) {
      this.toast(`Chat: ${err.message}`);
    }
  }

  async loadSettings() {
    try {
      const view = await this.api.call("GET", this.base);
      $("chat-slow").value = String(view.settings.slow_seconds);
      $("chat-keyword").value = view.settings.keyword;
      $("chat-words").value = view.settings.blocked_words.join("\n");
      $("chat-word-action").value = view.settings.blocked_action;
      for (const m of view.held) this.addHeld(m);
    } catch (err) {
      this.toast(`Chat: ${err.message}`);
    }
  }

  async saveSettings() {
    const words = $("chat-words").value.split("\n").map((w) => w.trim()).filter(Boolean);
    const body = {
      slow_seconds: Number($("chat-slow").value) || 0,
      keyword: $("chat-keyword").value.trim() || "SOLD",
      blocked_words: words,
      blocked_action: $("chat-word-action").value,
    };
    await this.act("PUT", "/settings", body);
    setText($("chat-settings-status"), "Saved");
  }

  addHeld(message) {
    if (this.held.has(message.id)) return;
    const el = h(
      "li",
      { class: "held", "data-id": message.id },
      h("span", { class: "chat-name", text: message.name }),
      h("span", { class: "chat-text", text: message.text }),
      h("span", { class: "muted", text: ` (${message.word})` }),
      h("button", { type: "button", class: "mini", onclick: () => this.act("POST", `/held/${message.id}/approve`) }, "Approve"),
      h("button", { type: "button", class: "mini danger", onclick: () => this.act("DELETE", `/held/${message.id}`) }, "Reject"),
    );
    this.held.set(message.id, el);
    $("chat-held").append(el);
    $("chat-held-box").hidden = false;
  }

  removeHeld(id) {
    this.held.get(id)?.remove();
    this.held.delete(id);
    $("chat-held-box").hidden = this.held.size === 0;
  }

  async refreshAudit() {
    try {
      const page = await this.api.call("GET", `${this.base}/audit?count=1000`);
      const items = page.records.slice(-50).reverse().map((r) =>
        h(
          "li",
          { class: "audit-entry" },
          h("time", { text: new Date(r.at_ms).toLocaleTimeString() }),
          h("span", { text: ` ${r.actor} (${r.role}) ` }),
          h("strong", { text: r.action }),
          r.target_name || r.target_uid ? h("span", { text: ` ${r.target_name || r.target_uid}` }) : null,
          r.detail ? h("span", { class: "muted", text: ` · ${r.detail}` }) : null,
        ),
      );
      $("chat-audit").replaceChildren(...items);
    } catch {
      // the next action refreshes it
    }
  }
}
