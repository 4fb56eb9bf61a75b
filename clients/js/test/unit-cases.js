// The pure parts and the client's behaviour over a scripted socket. Each case takes the package's
// module (`lib`), so the same cases run in Node (node.test.js) and in Chromium (the pytest suite).

import { ManualTimers, deepEqual, equal, ok, rejects, scriptedSockets, settle, throws } from "./harness.js";

const DROP = { id: "d1", sku: "S", title: "Sneaker", image_url: "", prices: { EUR: 1900 }, state: "live", ends_at: 10_000_000, per_customer_limit: 2, stock: { available: 5, held: 0, sold: 0, total: 5 } };

function welcome(extra = {}) {
  return { type: "welcome", show: "s1", title: "Friday", state: "live", seq: 10, epoch: "e1", server_time: 5_000_000, viewers: 3, can_reserve: true, reset: false, drops: [DROP], ...extra };
}

/** A client on scripted sockets and manual timers; the device clock is the timers' clock. */
function harness(lib, options = {}) {
  const timers = new ManualTimers();
  const { sockets, ScriptedSocket } = scriptedSockets();
  const client = lib.connect("ws://node.test/ws/shows/s1", {
    WebSocket: ScriptedSocket,
    token: "tok",
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
    now: () => 1_000_000 + timers.now,
    random: () => 0.5,
    backoff: { initialMs: 100, maxMs: 1000 },
    clockSyncMs: 0,
    ...options,
  });
  const events = [];
  for (const type of ["state", "close", "reset", "reserved", "error", "drop", "drop_ended", "change", "protocol_error"]) {
    client.on(type, (payload) => events.push([type, payload]));
  }
  return { client, sockets, timers, events, last: () => sockets[sockets.length - 1] };
}

export const unitCases = [
  {
    name: "snapshot applies sequenced events once, in order, and reports gaps",
    fn(lib) {
      const snap = new lib.Snapshot();
      equal(snap.apply(welcome()), lib.Applied.APPLIED);
      equal(snap.apply({ type: "drop_ended", seq: 11, drop: "d1", reason: "host" }), lib.Applied.APPLIED);
      equal(snap.drops.get("d1").state, "closed");
      equal(snap.apply({ type: "drop", seq: 11, drop: { ...DROP, state: "live" } }), lib.Applied.DUPLICATE);
      equal(snap.drops.get("d1").state, "closed", "a replayed event must not undo a later one");
      equal(snap.apply({ type: "show_ended", seq: 13 }), lib.Applied.GAP);
      equal(snap.state, "live");
      equal(snap.seq, 11);
      equal(snap.apply({ type: "show", seq: 12, show: "s1", title: "Again", state: "live" }), lib.Applied.APPLIED);
      equal(snap.title, "Again");
    },
  },
  {
    name: "snapshot: stock converges to the newest counters; a reset welcome replaces drops, keeps holds",
    fn(lib) {
      const snap = new lib.Snapshot();
      snap.apply(welcome());
      snap.apply({ type: "stock", drop: "d1", available: 3, held: 2, sold: 0, total: 5, ts: 200 });
      equal(snap.apply({ type: "stock", drop: "d1", available: 4, held: 1, sold: 0, total: 5, ts: 100 }), lib.Applied.DUPLICATE);
      deepEqual(snap.drops.get("d1").stock, { available: 3, held: 2, sold: 0, total: 5 });
      snap.apply({ type: "reserved", ref: "r1", drop: "d1", hold: "d1.1", qty: 1, expires_at: 5_600_000, from_waitlist: false, hold_ref: "d1.1.x" });
      snap.apply(welcome({ seq: 50, reset: true, drops: [{ ...DROP, id: "d2" }] }));
      deepEqual([...snap.drops.keys()], ["d2"]);
      equal(snap.seq, 50);
      equal(snap.holds.get("d1.1").holdRef, "d1.1.x");
      snap.apply({ type: "hold_expired", drop: "d1", hold: "d1.1" });
      equal(snap.holds.get("d1.1").state, "expired");
      snap.apply({ type: "confirmed", drop: "d2", hold: "d2.7", qty: 2 });
      equal(snap.holds.get("d2.7").state, "confirmed", "a push about a hold reserved elsewhere is kept");
      snap.apply({ type: "reserved", ref: "r2", drop: "d1", hold: "d1.3", qty: 1, expires_at: 5_600_000, from_waitlist: false, hold_ref: "x", state: "released" });
      equal(snap.holds.get("d1.3").state, "released", "a retried ref's answer says what became of its hold");
      equal(snap.holds.get("d1.1").checkoutUrl, "", "no checkout_url: no link");
      equal(snap.holds.get("d2.7").checkoutUrl, "");
      const link = "https://shop.example/cart/4401:1?attributes%5Blivedrop_hold%5D=d1.4.x";
      snap.apply({ type: "reserved", ref: "r3", drop: "d1", hold: "d1.4", qty: 1, expires_at: 5_600_000, from_waitlist: false, hold_ref: "d1.4.x", checkout_url: link });
      equal(snap.holds.get("d1.4").checkoutUrl, link);
      snap.apply({ type: "reserved", ref: "r4", drop: "d1", hold: "d1.5", qty: 1, expires_at: 5_600_000, from_waitlist: false, hold_ref: "d1.5.x", checkout_url: "javascript:alert(1)" });
      equal(snap.holds.get("d1.5").checkoutUrl, "", "only an http(s) link reaches an href");
    },
  },
  {
    name: "snapshot: a drop with variants keeps each variant's stock; sold out per variant and in all",
    fn(lib) {
      const shoe = {
        ...DROP,
        id: "shoe",
        stock: { available: 3, held: 0, sold: 0, total: 3 },
        variants: [
          { id: "s41", sku: "S-41", options: { size: "41" }, stock: { available: 1, held: 0, sold: 0, total: 1 } },
          { id: "s42", sku: "S-42", options: { size: "42" }, stock: { available: 2, held: 0, sold: 0, total: 2 }, prices: { EUR: 2100 } },
        ],
      };
      const snap = new lib.Snapshot();
      snap.apply(welcome({ drops: [DROP, shoe] }));
      ok(!lib.isSoldOut(snap.drops.get("shoe")) && !lib.isSoldOut(snap.drops.get("shoe"), "s41"));
      const variants = { s41: { available: 0, held: 1, sold: 0, total: 1 }, s42: { available: 2, held: 0, sold: 0, total: 2 } };
      snap.apply({ type: "stock", drop: "shoe", available: 2, held: 1, sold: 0, total: 3, ts: 10, variants });
      deepEqual(snap.variantOf("shoe", "s41").stock, variants.s41);
      equal(snap.variantOf("shoe", "s42").prices.EUR, 2100, "what the frame does not carry is kept");
      ok(lib.isSoldOut(snap.drops.get("shoe"), "s41"), "size 41 is sold out");
      ok(!lib.isSoldOut(snap.drops.get("shoe")), "the drop is not: size 42 still sells");
      ok(lib.isSoldOut(snap.drops.get("shoe"), "s99"), "an unknown size sells nothing");
      equal(shoe.variants[0].stock.available, 1, "the snapshot copies what the frame gave it");
      snap.apply({ type: "stock", drop: "shoe", available: 0, held: 3, sold: 0, total: 3, ts: 11, variants: { s41: variants.s41, s42: { available: 0, held: 2, sold: 0, total: 2 } } });
      ok(lib.isSoldOut(snap.drops.get("shoe")));
      // A drop without variants: frames and the snapshot as before.
      snap.apply({ type: "stock", drop: "d1", available: 0, held: 5, sold: 0, total: 5, ts: 12 });
      equal(snap.drops.get("d1").variants, undefined);
      ok(lib.isSoldOut(snap.drops.get("d1")));
      snap.apply({ type: "reserved", ref: "r", drop: "shoe", hold: "shoe~s41.1", qty: 1, expires_at: 5_060_000, from_waitlist: false, hold_ref: "x", variant: "s41" });
      equal(snap.holds.get("shoe~s41.1").variant, "s41");
      snap.apply({ type: "confirmed", drop: "shoe", hold: "shoe~s42.3", qty: 1, variant: "s42" });
      equal(snap.holds.get("shoe~s42.3").variant, "s42", "a push about another tab's hold keeps its variant");
    },
  },
  {
    name: "reserve and waitlist name the variant; frames without one stay as before",
    async fn(lib) {
      const { client, last } = harness(lib);
      last().open();
      last().receive(welcome());
      const held = client.reserve("shoe", 1, { variant: "s42" });
      const plain = client.reserve("d1");
      client.waitlist("shoe", 1, { variant: "s41" }).catch(() => {});
      const [withVariant, without] = last().sentOf("reserve");
      equal(withVariant.variant, "s42");
      ok(!("variant" in without), "a drop without variants sends no variant field");
      equal(last().sentOf("waitlist")[0].variant, "s41");
      last().receive({ type: "reserved", ref: withVariant.ref, drop: "shoe", hold: "shoe~s42.1", qty: 1, expires_at: 5_060_000, from_waitlist: false, hold_ref: "h", variant: "s42" });
      equal((await held).variant, "s42");
      last().receive({ type: "error", code: "variant_required", message: "drop d1 has variants", ref: without.ref });
      equal((await rejects(plain)).code, "variant_required");
    },
  },
  {
    name: "server clock: half round trip, the tightest sample wins, remaining time never negative",
    fn(lib) {
      let now = 1000;
      const clock = new lib.ServerClock(() => now);
      clock.seed(5000, 1000);
      equal(clock.offset, 4000);
      clock.sample(9100, 2000, 2200); // rtt 200: server time at 2100 device ms
      equal(clock.offset, 7000);
      clock.seed(1, 1000); // a one-way reading never overrides a round-trip one
      equal(clock.offset, 7000);
      clock.sample(99999, 3000, 3500); // looser: ignored
      equal(clock.offset, 7000);
      clock.sample(10050, 3000, 3100); // tighter: 10050 at 3050
      equal(clock.offset, 7000);
      now = 3050;
      equal(clock.now(), 10050);
      equal(clock.remainingMs(11050), 1000);
      equal(clock.remainingMs(9000), 0);
      equal(lib.deadlineOf({ expires_at: 5 }), 5);
      equal(lib.deadlineOf({ expiresAt: 6 }), 6);
      equal(lib.deadlineOf({ ends_at: 7 }), 7);
      equal(lib.deadlineOf({ ends_at: 7, state: "closed" }), undefined, "a closed drop counts no more");
      equal(lib.deadlineOf({ expiresAt: 6, state: "released" }), undefined);
      equal(lib.deadlineOf({ expiresAt: 6, state: "held" }), 6);
    },
  },
  {
    name: "backoff grows exponentially with jitter and a cap; close codes map to meanings",
    fn(lib) {
      const opts = { initialMs: 100, maxMs: 1000 };
      equal(lib.backoffDelay(0, opts, () => 0), 50);
      equal(lib.backoffDelay(0, opts, () => 1), 100);
      equal(lib.backoffDelay(2, opts, () => 1), 400);
      equal(lib.backoffDelay(10, opts, () => 1), 1000);
      equal(lib.backoffDelay(10, opts, () => 0), 500);
      deepEqual(lib.closeMeaning(1013), { meaning: "slow", reconnect: true });
      deepEqual(lib.closeMeaning(1012), { meaning: "restart", reconnect: true });
      deepEqual(lib.closeMeaning(1008), { meaning: "unauthorized", reconnect: false });
      deepEqual(lib.closeMeaning(4404), { meaning: "unknown_show", reconnect: false });
      equal(lib.closeMeaning(4999).reconnect, true);
    },
  },
  {
    name: "refs: generated ones are valid and distinct; bad ones are refused before sending",
    fn(lib) {
      const refs = new Set(Array.from({ length: 200 }, () => lib.newRef("r")));
      equal(refs.size, 200);
      for (const ref of refs) lib.checkRef(ref);
      for (const bad of ["", "a b", "x".repeat(65), "waitlist", 7]) ok(throws(() => lib.checkRef(bad)) instanceof TypeError, `ref ${bad}`);
    },
  },
  {
    name: "connect offers the token as a subprotocol; welcome opens the snapshot",
    fn(lib) {
      const { client, last, events } = harness(lib);
      equal(client.state, "connecting");
      deepEqual(last().protocols, ["livedrop.v1", "livedrop.token.tok"]);
      equal(last().url, "ws://node.test/ws/shows/s1", "no resume on a first connection");
      last().open();
      equal(client.state, "open");
      last().receive(welcome());
      equal(client.snapshot.drops.get("d1").stock.available, 5);
      ok(client.snapshot.canReserve);
      equal(client.serverNow(), 5_000_000, "the welcome seeds the clock");
      deepEqual(events.filter(([t]) => t === "state").map(([, p]) => [p.previous, p.state]), [["connecting", "open"]]);
    },
  },
  {
    name: "a reserve whose answer was lost is re-sent with the same ref after a resume",
    async fn(lib) {
      const { client, last, timers, sockets, events } = harness(lib);
      last().open();
      last().receive(welcome());
      const answer = client.reserve("d1", 2);
      const [sent] = last().sentOf("reserve");
      equal(sent.drop, "d1");
      equal(sent.qty, 2);
      last().serverClose(1006);
      equal(client.state, "reconnecting");
      equal(sockets.length, 1, "waits for the backoff");
      timers.advance(100);
      equal(sockets.length, 2);
      const url = new URL(last().url);
      equal(url.searchParams.get("resume_from"), "10");
      equal(url.searchParams.get("epoch"), "e1");
      last().open();
      deepEqual(last().sentOf("reserve"), [sent], "same frame, same ref");
      // The resume replays what was missed; anything already seen is dropped.
      last().receive({ type: "drop_ended", seq: 10, drop: "d1", reason: "host" });
      equal(client.snapshot.drops.get("d1").state, "live");
      last().receive({ type: "drop", seq: 11, drop: { ...DROP, title: "Sneaker v2" } });
      equal(client.snapshot.drops.get("d1").title, "Sneaker v2");
      last().receive({ type: "reserved", ref: sent.ref, drop: "d1", hold: "d1.4", qty: 2, expires_at: 5_060_000, from_waitlist: false, hold_ref: "d1.4.sig" });
      const reserved = await answer;
      equal(reserved.hold, "d1.4");
      equal(client.snapshot.holds.get("d1.4").state, "held");
      equal(client.remainingMs(client.snapshot.holds.get("d1.4")), 60_000 - 100);
      equal(events.filter(([t]) => t === "drop").length, 1, "the duplicate emitted nothing");
    },
  },
  {
    name: "a resume the server cannot serve ends in a reset welcome: snapshot replaced, reset emitted",
    fn(lib) {
      const { client, last, timers, events } = harness(lib);
      last().open();
      last().receive(welcome());
      last().serverClose(1011);
      timers.advance(100);
      equal(new URL(last().url).searchParams.get("resume_from"), "10");
      last().open();
      last().receive(welcome({ seq: 400, epoch: "e2", reset: true, drops: [{ ...DROP, id: "d9" }] }));
      deepEqual([client.snapshot.seq, client.snapshot.epoch, [...client.snapshot.drops.keys()]], [400, "e2", ["d9"]]);
      equal(events.filter(([t]) => t === "reset").length, 1);
      last().receive({ type: "drop_ended", seq: 401, drop: "d9", reason: "time" });
      equal(client.snapshot.drops.get("d9").state, "closed", "events follow on from the new seq");
    },
  },
  {
    name: "requests made while reconnecting go out on the next connection; timeouts count across it",
    async fn(lib) {
      const { client, last, timers } = harness(lib, { requestTimeoutMs: 5000 });
      last().open();
      last().receive(welcome());
      last().serverClose(1012);
      const waiting = client.waitlist("d1", 1);
      const late = client.release("d1.9", { timeoutMs: 300 });
      timers.advance(100);
      last().open();
      deepEqual(last().sent.map((f) => f.type), ["waitlist", "release"]);
      last().receive({ type: "waitlisted", drop: "d1", position: 4, ref: last().sentOf("waitlist")[0].ref });
      equal((await waiting).position, 4);
      timers.advance(200);
      const error = await rejects(late);
      equal(error.kind, "timeout");
      equal(error.ref, last().sentOf("release")[0].ref);
    },
  },
  {
    name: "typed refusals: rejected reason, error code, rate limits; foreign answers resolve nothing",
    async fn(lib) {
      const { client, last, events } = harness(lib);
      last().open();
      last().receive(welcome());
      const a = client.reserve("d1", 3);
      const b = client.reserve("d1", 1, { ref: "mine-2" });
      const c = client.waitlist("d1");
      const [ra, rb, rc] = [last().sentOf("reserve")[0].ref, "mine-2", last().sentOf("waitlist")[0].ref];
      last().receive({ type: "rejected", ref: ra, drop: "d1", reason: "limit_exceeded" });
      last().receive({ type: "error", code: "rate_limited", message: "too many requests", ref: rb });
      last().receive({ type: "error", code: "unknown_drop", message: "no drop d1", ref: rc });
      const ea = await rejects(a);
      ok(ea instanceof lib.RequestError);
      equal(ea.kind, "rejected");
      equal(ea.reason, "limit_exceeded");
      const eb = await rejects(b);
      equal(eb.kind, "error");
      ok(eb.rateLimited);
      equal((await rejects(c)).code, "unknown_drop");
      // Another tab's answer (issue 18 sends answers to every tab) and a waitlist hand-out.
      last().receive({ type: "reserved", ref: "other-tab", drop: "d1", hold: "d1.8", qty: 1, expires_at: 5_060_000, from_waitlist: false, hold_ref: "h" });
      last().receive({ type: "reserved", ref: "waitlist", drop: "d1", hold: "d1.9", qty: 1, expires_at: 5_060_000, from_waitlist: true, hold_ref: "h" });
      deepEqual([...client.snapshot.holds.keys()], ["d1.8", "d1.9"]);
      equal(client.requests.pending().length, 0);
      // An error without ref (a frame the server could not read) is an event, nothing more.
      last().receive({ type: "error", code: "bad_frame", message: "?", ref: null });
      ok(events.some(([t, p]) => t === "error" && p.code === "bad_frame"));
      last().receive("not json");
      ok(events.some(([t]) => t === "protocol_error"));
      equal(client.state, "open");
    },
  },
  {
    name: "close codes: 1013 resumes, 4404 and a refused static token stop and fail what waits",
    async fn(lib) {
      const slow = harness(lib);
      slow.last().open();
      slow.last().receive(welcome());
      slow.last().serverClose(1013);
      ok(slow.events.some(([t, p]) => t === "close" && p.meaning === "slow" && p.willReconnect));
      slow.timers.advance(100);
      equal(slow.sockets.length, 2);

      const unknown = harness(lib);
      unknown.last().open();
      unknown.last().serverClose(4404);
      equal(unknown.client.state, "closed");
      unknown.timers.advance(100_000);
      equal(unknown.sockets.length, 1);

      const refused = harness(lib);
      refused.last().open();
      const waiting = refused.client.reserve("d1");
      refused.last().serverClose(1008);
      equal(refused.client.state, "closed");
      equal((await rejects(waiting)).kind, "closed");
      equal((await rejects(refused.client.ping())).kind, "closed");
    },
  },
  {
    name: "the token hook is asked before every connection; after a 1008 it gets one more try",
    async fn(lib) {
      const tokens = ["old", "new", ""];
      const asked = [];
      const { client, sockets, timers, events } = harness(lib, { token: async () => { const t = tokens.shift(); asked.push(t); return t; } });
      await settle();
      deepEqual(sockets[0].protocols, ["livedrop.v1", "livedrop.token.old"]);
      sockets[0].open();
      sockets[0].serverClose(1008);
      ok(events.some(([t, p]) => t === "close" && p.meaning === "unauthorized" && p.willReconnect));
      timers.advance(100);
      await settle();
      deepEqual(sockets[1].protocols, ["livedrop.v1", "livedrop.token.new"]);
      sockets[1].open();
      sockets[1].serverClose(1008);
      equal(client.state, "closed", "two refusals in a row: stop");
      deepEqual(asked, ["old", "new"]);
    },
  },
  {
    name: "a refused handshake never shows open: the client asks over HTTP why, and stops or retries",
    async fn(lib) {
      const verdicts = { "401": 401, "404": 404, "204": 204, none: null };
      const asked = [];
      for (const [name, status] of Object.entries(verdicts)) {
        const fetch = async (url, init) => {
          asked.push([url, init.headers.Authorization]);
          if (status === null) throw new TypeError("offline");
          return { status, json: async () => ({ status, code: `c${status}`, title: "t", type: "x" }) };
        };
        const { client, last, timers, events } = harness(lib, { fetch });
        const waiting = client.reserve("d1");
        last().serverClose(1006); // what a browser reports for any failed handshake
        await settle();
        const [, info] = events.find(([t]) => t === "close");
        ok(!events.some(([t, p]) => t === "state" && p.state === "open"), `${name}: never open`);
        equal(info.handshake, true);
        equal(info.status, status ?? 0, name);
        if (status === 401 || status === 404) {
          deepEqual([info.meaning, info.willReconnect, client.state], [status === 401 ? "unauthorized" : "unknown_show", false, "closed"], name);
          equal(info.problem.code, `c${status}`);
          equal((await rejects(waiting)).kind, "closed");
        } else {
          deepEqual([info.meaning, info.willReconnect, client.state], ["network", true, "reconnecting"], name);
          timers.advance(100);
          ok(last().url.startsWith("ws://node.test/ws/shows/s1"), "tries again");
        }
      }
      deepEqual(asked[0], ["http://node.test/ws/shows/s1", "Bearer tok"], "the token in a header, never in the URL");
    },
  },
  {
    name: "a handshake refused for the token asks the token hook once more, then stops",
    async fn(lib) {
      const tokens = ["stale", "still-stale"];
      const fetch = async () => ({ status: 401, json: async () => ({ code: "token_expired" }) });
      const { client, sockets, timers, events } = harness(lib, { fetch, token: async () => tokens.shift() });
      await settle();
      sockets[0].serverClose(1006);
      await settle();
      ok(events.some(([t, p]) => t === "close" && p.status === 401 && p.willReconnect));
      timers.advance(100);
      await settle();
      deepEqual(sockets[1].protocols, ["livedrop.v1", "livedrop.token.still-stale"]);
      sockets[1].serverClose(1006);
      await settle();
      equal(client.state, "closed", "two refusals in a row: stop");
    },
  },
  {
    name: "a token that expires on an open connection (4401): the hook gives a new one and the client resumes; a static token stops",
    async fn(lib) {
      const tokens = ["first", "fresh"];
      const { client, sockets, timers, events } = harness(lib, { token: async () => tokens.shift() });
      await settle();
      sockets[0].open();
      sockets[0].receive(welcome());
      sockets[0].serverClose(4401, "token_expired");
      ok(events.some(([t, p]) => t === "close" && p.meaning === "token_expired" && p.willReconnect));
      timers.advance(100);
      await settle();
      deepEqual(sockets[1].protocols, ["livedrop.v1", "livedrop.token.fresh"]);
      equal(new URL(sockets[1].url).searchParams.get("resume_from"), "10", "resumes where it was");

      const fixed = harness(lib);
      fixed.last().open();
      fixed.last().receive(welcome());
      fixed.last().serverClose(4401, "token_expired");
      equal(fixed.client.state, "closed", "never again with the stale token");
      fixed.timers.advance(100_000);
      equal(fixed.sockets.length, 1);
      equal(client.state, "reconnecting");
    },
  },
  {
    name: "a skipped seq asks the server to rewind (hello) and ignores what overtook the gap",
    fn(lib) {
      const { client, last } = harness(lib);
      last().open();
      last().receive(welcome());
      last().receive({ type: "drop_ended", seq: 12, drop: "d1", reason: "time" });
      equal(client.snapshot.drops.get("d1").state, "live");
      deepEqual(last().sentOf("hello"), [{ type: "hello", resume_from: 10, epoch: "e1" }]);
      last().receive({ type: "show", seq: 13, show: "s1", title: "x", state: "live" });
      equal(last().sentOf("hello").length, 1, "one rewind per gap");
      last().receive({ type: "drop", seq: 11, drop: { ...DROP, title: "Eleven" } });
      last().receive({ type: "drop_ended", seq: 12, drop: "d1", reason: "time" });
      equal(client.snapshot.drops.get("d1").state, "closed");
      equal(client.snapshot.seq, 12);
    },
  },
  {
    name: "pings refine the clock; the countdown ticks on the server clock and stops at zero",
    async fn(lib) {
      const { client, last, timers } = harness(lib);
      last().open();
      last().receive(welcome());
      const pong = client.ping();
      const [ping] = last().sentOf("ping");
      timers.advance(40);
      last().receive({ type: "pong", server_time: 7_000_000, ref: ping.ref });
      await pong;
      equal(client.clock.rtt, 40);
      equal(client.serverNow(), 7_000_020);
      const ticks = [];
      const stop = client.countdown(7_000_520, (ms) => ticks.push(ms), { intervalMs: 250 });
      timers.advance(1000);
      deepEqual(ticks, [500, 250, 0]);
      stop();
      const after = [];
      client.countdown({ ends_at: 9_000_000 }, (ms) => after.push(ms))();
      timers.advance(1000);
      equal(after.length, 1, "stopped");
    },
  },
  {
    name: "reconnect() drops the socket and resumes at once; close() is final",
    async fn(lib) {
      const { client, sockets } = harness(lib);
      sockets[0].open();
      sockets[0].receive(welcome());
      client.reconnect();
      equal(sockets[0].closedWith, 1000);
      equal(sockets.length, 2);
      equal(new URL(sockets[1].url).searchParams.get("resume_from"), "10");
      sockets[1].open();
      const pending = client.reserve("d1");
      client.close();
      equal(client.state, "closed");
      equal((await rejects(pending)).kind, "closed");
      sockets[1].serverClose(1012);
      equal(sockets.length, 2);
    },
  },
];
