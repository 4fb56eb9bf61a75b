// Cases against a real LiveDrop node, through its host API (to set shows up and move them on)
// and its viewer WebSocket. `env` gives `http` (the node's base URL), `hostToken`, and `scale`
// (LIVEDROP_TEST_TIMEOUT_SCALE: waits scale with it). Each case makes its own show.

import { deepEqual, equal, ok, rejects } from "./harness.js";

async function api(env, method, path, body) {
  const response = await fetch(env.http + path, {
    method,
    headers: { Authorization: `Bearer ${env.hostToken}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

let shows = 0;

/** A show with live drops; returns ids and a way to mint viewer tokens. */
async function liveShow(env, drops = [{ total: 5 }], launch = drops.length) {
  shows += 1;
  const show = `js${shows}-${Math.random().toString(36).slice(2, 8)}`;
  await api(env, "POST", "/api/shows", { show_id: show, title: "JS client show" });
  const ids = [];
  for (const [i, d] of drops.entries()) {
    const id = `${show}-d${i}`;
    await api(env, "POST", `/api/shows/${show}/drops`, { drop_id: id, sku: `SKU-${i}`, title: `Drop ${i}`, total: d.total, per_customer_limit: 2, hold_seconds: 120, prices: { EUR: 1900 } });
    ids.push(id);
  }
  for (const id of ids.slice(0, launch)) await api(env, "POST", `/api/drops/${id}/launch`, { duration_seconds: 300 });
  const token = async (viewer) => (await api(env, "POST", `/api/shows/${show}/tokens`, { viewer_id: viewer })).token;
  return { show, drops: ids, token, url: `${env.http.replace(/^http/, "ws")}/ws/shows/${show}` };
}

/** The next event `type` that satisfies `pred` (already true in the snapshot counts, for `change`). */
function next(client, type, env, pred = () => true, seconds = 10) {
  const closes = [];
  client.on("close", (info) => closes.push(info));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${type} event in time (state ${client.state}, closes ${JSON.stringify(closes)})`));
    }, seconds * 1000 * (env.scale || 1));
    const off = client.on(type, (payload) => {
      if (!pred(payload)) return;
      clearTimeout(timer);
      off();
      resolve(payload);
    });
  });
}

async function until(client, env, pred, what) {
  if (pred()) return;
  await next(client, "change", env, () => pred()).catch(() => {
    throw new Error(`the snapshot never reached: ${what}`);
  });
}

export const liveCases = [
  {
    name: "chat: send, every client gets it in a chat frame, a refusal rejects, a claim comment holds",
    async fn(lib, env) {
      const setup = await liveShow(env);
      const [drop] = setup.drops;
      const [tokenA, tokenB] = [await setup.token("v-chat-a"), await setup.token("v-chat-b")];
      const alice = lib.connect(setup.url, { token: tokenA });
      const aliceJoined = next(alice, "chat_history", env);
      const bob = lib.connect(setup.url, { token: tokenB });
      const bobJoined = next(bob, "chat_history", env);
      try {
        const [history] = await Promise.all([bobJoined, aliceJoined]);
        equal(history.codes[drop], "A");
        const got = next(bob, "chat", env, (f) => f.messages.some((m) => m.text === "<b>hi</b>"));
        const ack = await alice.chat("<b>hi</b>");
        equal(ack.status, "posted");
        const frame = await got;
        ok(frame.messages.find((m) => m.text === "<b>hi</b>").uid, "the author's pseudonym");
        const refused = await rejects(bob.moderate("clear"));
        equal(refused.kind, "rejected");
        equal(refused.reason, "forbidden");
        const held = next(alice, "reserved", env);
        equal((await alice.chat("SOLD A 2")).status, "posted");
        equal((await held).qty, 2);
        ok([...alice.snapshot.holds.values()].some((h) => h.drop === drop), "the claim's hold is in the snapshot");
      } finally {
        alice.close();
        bob.close();
      }
    },
  },
  {
    name: "a drop with sizes: reserve names the size, sizes sell out on their own, errors name the rule",
    async fn(lib, env) {
      shows += 1;
      const show = `jsv${shows}-${Math.random().toString(36).slice(2, 8)}`;
      const drop = `${show}-shoe`;
      await api(env, "POST", "/api/shows", { show_id: show, title: "JS sizes" });
      await api(env, "POST", `/api/shows/${show}/drops`, {
        drop_id: drop,
        title: "Sneaker",
        prices: { EUR: 8900 },
        hold_seconds: 120,
        variants: [
          { id: "s41", sku: `${show}-41`, quantity: 1, options: { size: "41" } },
          { id: "s42", sku: `${show}-42`, quantity: 2, options: { size: "42" } },
        ],
      });
      await api(env, "POST", `/api/drops/${drop}/launch`, { duration_seconds: 300 });
      const token = (await api(env, "POST", `/api/shows/${show}/tokens`, { viewer_id: "v-js-sizes" })).token;
      const client = lib.connect(`${env.http.replace(/^http/, "ws")}/ws/shows/${show}`, { token });
      try {
        const welcome = await next(client, "welcome", env);
        deepEqual(welcome.drops[0].variants.map((v) => v.options.size), ["41", "42"]);
        equal((await rejects(client.reserve(drop))).code, "variant_required");
        equal((await rejects(client.reserve(drop, 1, { variant: "s99" }))).code, "unknown_variant");
        const reserved = await client.reserve(drop, 1, { variant: "s41" });
        equal(reserved.variant, "s41");
        equal(client.snapshot.holds.get(reserved.hold).variant, "s41");
        await until(client, env, () => lib.isSoldOut(client.snapshot.drops.get(drop), "s41"), "size 41 sold out");
        ok(!lib.isSoldOut(client.snapshot.drops.get(drop)), "size 42 still sells");
        equal((await rejects(client.reserve(drop, 1, { variant: "s41" }))).reason, "sold_out");
        const waiting = await client.waitlist(drop, 1, { variant: "s41" });
        equal(waiting.variant, "s41");
        await client.reserve(drop, 2, { variant: "s42" });
        await until(client, env, () => lib.isSoldOut(client.snapshot.drops.get(drop)), "every size sold out");
        equal(client.snapshot.drops.get(drop).stock.held, 3);
      } finally {
        client.close();
      }
    },
  },
  {
    name: "reserve, stock converges, the hold counts down on the server clock, release",
    async fn(lib, env) {
      const setup = await liveShow(env);
      const [drop] = setup.drops;
      const client = lib.connect(setup.url, { token: await setup.token("v-js-1") });
      try {
        const welcome = await next(client, "welcome", env);
        equal(welcome.drops[0].state, "live");
        ok(client.snapshot.canReserve);
        const reserved = await client.reserve(drop, 1);
        ok(reserved.hold.startsWith(`${drop}.`) && reserved.hold_ref, "a hold with its reference");
        const hold = client.snapshot.holds.get(reserved.hold);
        equal(hold.state, "held");
        const left = client.remainingMs(hold);
        ok(left > 100_000 && left < 121_000, `hold time left ${left} (120 s, less the round trip, give or take the clock estimate)`);
        ok(client.remainingMs(client.snapshot.drops.get(drop)) > 200_000, "the drop's own countdown");
        await until(client, env, () => client.snapshot.drops.get(drop).stock.available === 4, "4 available");
        const pong = await client.ping();
        ok(pong.server_time > 0 && Number.isFinite(client.clock.rtt), "a round-trip sample");
        ok(Math.abs(client.serverNow() - pong.server_time) < 60_000);
        const released = await client.release(reserved.hold);
        equal(released.hold, reserved.hold);
        equal(client.snapshot.holds.get(reserved.hold).state, "released");
        await until(client, env, () => client.snapshot.drops.get(drop).stock.available === 5, "5 available again");
        const refused = await rejects(client.reserve(drop, 3));
        equal(refused.kind, "rejected");
        equal(refused.reason, "limit_exceeded");
        equal((await rejects(client.reserve("no-such-drop"))).code, "unknown_drop");
      } finally {
        client.close();
      }
    },
  },
  {
    name: "a reconnect resumes: the missed events arrive in order, with no second welcome",
    async fn(lib, env) {
      const setup = await liveShow(env, [{ total: 3 }, { total: 4 }], 1);
      const [first, second] = setup.drops;
      const token = await setup.token("v-js-2");
      let connections = 0;
      let openGate;
      const gate = new Promise((resolve) => {
        openGate = resolve;
      });
      // The hook holds the reconnect until the host has moved the show on: the events are missed.
      const client = lib.connect(setup.url, { token: async () => (connections++ > 0 ? gate.then(() => token) : token) });
      const welcomes = [];
      const sequenced = [];
      client.on("welcome", (f) => welcomes.push(f));
      client.on("drop", (f) => sequenced.push([f.seq, "drop", f.drop.id]));
      client.on("drop_ended", (f) => sequenced.push([f.seq, "drop_ended", f.drop]));
      try {
        const welcome = await next(client, "welcome", env);
        client.reconnect();
        equal(client.state, "reconnecting");
        await api(env, "POST", `/api/drops/${first}/end`, { reason: "host" });
        await api(env, "POST", `/api/drops/${second}/launch`, { duration_seconds: 300 });
        openGate();
        await next(client, "state", env, (s) => s.state === "open");
        await until(client, env, () => client.snapshot.seq === welcome.seq + 2, "both missed events");
        deepEqual(sequenced, [
          [welcome.seq + 1, "drop_ended", first],
          [welcome.seq + 2, "drop", second],
        ]);
        equal(welcomes.length, 1, "a resume, not a fresh welcome");
        equal(client.snapshot.drops.get(first).state, "closed");
        equal(client.snapshot.drops.get(second).state, "live");
        equal(connections, 2);
      } finally {
        client.close();
      }
    },
  },
  {
    name: "a reserve cut off by a reconnect is answered once, on its own ref",
    async fn(lib, env) {
      const setup = await liveShow(env, [{ total: 5 }]);
      const [drop] = setup.drops;
      const client = lib.connect(setup.url, { token: await setup.token("v-js-3") });
      try {
        await next(client, "welcome", env);
        const answer = client.reserve(drop, 1, { ref: "cut-off-1" });
        client.reconnect(); // the frame went out on the old socket; its answer may be lost with it
        const reserved = await answer;
        equal(reserved.ref, "cut-off-1");
        const view = await api(env, "GET", `/api/drops/${drop}`);
        equal(view.stock.counters.held, 1, "one hold, however many times the ref was sent");
        equal([...client.snapshot.holds.values()].filter((h) => h.state === "held").length, 1);
      } finally {
        client.close();
      }
    },
  },
  {
    name: "a token that expires on an open connection closes it (4401); the hook's new token resumes it",
    async fn(lib, env) {
      const setup = await liveShow(env);
      const mint = async (ttl) =>
        (await api(env, "POST", `/api/shows/${setup.show}/tokens`, { viewer_id: "v-js-exp", ttl_seconds: ttl })).token;
      const tokens = [await mint(1.5), await mint(600)];
      const client = lib.connect(setup.url, { token: async () => tokens.shift() });
      const welcomes = [];
      client.on("welcome", (f) => welcomes.push(f));
      try {
        await next(client, "welcome", env);
        const expired = await next(client, "close", env, () => true, 5);
        deepEqual([expired.code, expired.meaning, expired.willReconnect], [4401, "token_expired", true]);
        await next(client, "state", env, (s) => s.state === "open");
        const reserved = await client.reserve(setup.drops[0], 1);
        ok(reserved.hold, "the new token reserves");
        equal(welcomes.length, 1, "a resume, not a fresh welcome");
      } finally {
        client.close();
      }
    },
  },
  {
    name: "two tabs of one viewer: each answer reaches both; a retried ref says its hold was released",
    async fn(lib, env) {
      const setup = await liveShow(env);
      const [drop] = setup.drops;
      const token = await setup.token("v-js-tabs");
      const phone = lib.connect(setup.url, { token });
      const laptop = lib.connect(setup.url, { token });
      try {
        await Promise.all([next(phone, "welcome", env), next(laptop, "welcome", env)]);
        const seen = next(laptop, "reserved", env, (f) => f.ref === "tab-1");
        const reserved = await phone.reserve(drop, 1, { ref: "tab-1" });
        equal(reserved.state, "held");
        equal((await seen).hold, reserved.hold);
        equal(laptop.snapshot.holds.get(reserved.hold).holdRef, reserved.hold_ref, "the other tab can pay for it");
        const gone = next(laptop, "released", env, (f) => f.hold === reserved.hold);
        await phone.release(reserved.hold);
        await gone;
        equal(laptop.snapshot.holds.get(reserved.hold).state, "released");
        const retried = await phone.reserve(drop, 1, { ref: "tab-1" });
        deepEqual([retried.hold, retried.state], [reserved.hold, "released"], "the same hold, and the truth about it");
        equal(phone.snapshot.holds.get(reserved.hold).state, "released");
        const view = await api(env, "GET", `/api/drops/${drop}`);
        equal(view.stock.counters.held, 0, "a retried ref never makes a second hold");
      } finally {
        phone.close();
        laptop.close();
      }
    },
  },
  {
    name: "refusals: no token may watch but not reserve; a forged token and an unknown show never open, and stop",
    async fn(lib, env) {
      const setup = await liveShow(env);
      const watcher = lib.connect(setup.url);
      try {
        await next(watcher, "welcome", env);
        equal(watcher.snapshot.canReserve, false);
        equal((await rejects(watcher.reserve(setup.drops[0]))).code, "unauthenticated");
      } finally {
        watcher.close();
      }
      // Refused in the handshake: the socket never opens (a browser reports 1006), the client asks
      // the server why over HTTP, and stops.
      const states = [];
      const forged = lib.connect(setup.url, { token: "e30.forged" });
      forged.on("state", ({ state }) => states.push(state));
      const refusal = await next(forged, "close", env);
      deepEqual([refusal.handshake, refusal.status, refusal.problem.code], [true, 401, "invalid_token"]);
      deepEqual([refusal.meaning, refusal.willReconnect, forged.state], ["unauthorized", false, "closed"]);
      const lost = lib.connect(setup.url.replace(/[^/]+$/, "no-such-show"));
      lost.on("state", ({ state }) => states.push(state));
      const gone = await next(lost, "close", env);
      deepEqual([gone.status, gone.meaning, lost.state], [404, "unknown_show", "closed"]);
      ok(!states.includes("open"), `never shown as connected: ${states}`);
    },
  },
];
