"""Locust scenario of a live flash sale on LiveDrop: viewers, buyers and commerce platforms.

Run it through ``python -m loadtest.run`` (a local stack, a bounded show and a verdict), or
point Locust at any deployment::

    locust -f loadtest/locustfile.py --host http://lb:8080 --headless --show-seconds 120

Users (every frame is raw JSON over a WebSocket, docs/protocol.md):

* ``Viewer`` watches ``/ws/shows/{show}`` without a token. It reports the time to ``welcome``,
  the push latency of every ``stock`` frame (now - its ``ts``) and of every drop launch (now -
  the moment Redis opened it, which is ``ends_at`` - the drop's duration), and it checks that
  ``seq`` never skips or repeats. When the server closes it (1012 node shutting down, 1013 too
  slow, a node lost) it reconnects, to the next target if there are several, with
  ``resume_from``/``epoch``, as a real client behind a load balancer would.
* ``Buyer`` is a viewer with a token minted through the host API. On every new drop it
  reserves; it then confirms some holds through ``POST /api/holds/{hold_ref}/confirm`` (a checkout),
  releases others with a ``release`` frame and lets the rest expire. Sold out, it sometimes
  joins the waitlist, otherwise it retries when stock comes back.
* ``Platform`` sends signed order webhooks of every enabled platform (loadtest/deliveries.py),
  each followed now and then by an exact duplicate sent to another node, as platforms retry.

``FlashSale`` (the shape) ramps the users up, creates the show, launches the drops on the
plan's schedule, restocks each once, and ends the show (loadtest/plan.py).

Options (``--help`` lists them under "Custom options"): ``--show-id``, ``--show-seconds``,
``--viewers``, ``--buyers``, ``--platforms``, ``--drops``, ``--stock``, ``--drop-seconds``,
``--hold-seconds``, ``--targets`` (comma-separated base URLs; default: ``--host``),
``--record-dir`` (what clients were told, for the verdict), ``--host-token``. Webhook
secrets are read from the server's own variables (``LIVEDROP_SHOPIFY_SECRETS``...), the host
token from ``LOADTEST_HOST_TOKEN`` or the first of ``LIVEDROP_HOST_TOKENS``.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.pool
from locust import LoadTestShape, User, between, constant, events, task
from locust.clients import HttpSession
from locust.runners import WorkerRunner

from loadtest.deliveries import Deliveries, Delivery
from loadtest.hostapi import HostApi, HostApiError
from loadtest.plan import Action, ActionKind, Plan, make_plan
from loadtest.records import RecordWriter
from loadtest.signing import PlatformSecrets
from loadtest.wsclient import Frame, FrameSocket

logger = logging.getLogger("loadtest")

ANSWER_TIMEOUT = 10.0  # seconds a reserve/release/ping may wait for its answer before it counts as failed
CONFIRM_SHARE = 0.5  # of the holds a buyer gets: confirmed by the checkout
RELEASE_SHARE = 0.25  # released with a frame; the rest are abandoned and expire
WAITLIST_SHARE = 0.3  # of the buyers told sold_out: join the waitlist (the others retry on restock)
MAX_RETRIES = 2  # reservations a buyer retries per drop when units come back
CANCEL_SHARE = 0.15  # of platform orders: later cancelled or refunded
OVERSELL_SHARE = 0.1  # of platform orders: placed even though the drop looked sold out
DUPLICATE_SHARE = 0.3  # of platform deliveries: delivered a second time, byte for byte
CLOSE_NO_RESUME = frozenset({1008, 4404})  # bad token, unknown show: reconnecting cannot help


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _options(parser: Any) -> None:
    parser.add_argument("--show-id", default="", help="show to create and play (default: a new one per run)")
    parser.add_argument("--show-seconds", type=float, default=60.0, help="length of the show; the test stops after")
    parser.add_argument("--viewers", type=int, default=240, help="viewers without a token (watch only)")
    parser.add_argument("--buyers", type=int, default=60, help="viewers with a token who reserve")
    parser.add_argument("--platforms", type=int, default=6, help="users sending platform order webhooks")
    parser.add_argument("--drops", type=int, default=3, help="drops launched during the show")
    parser.add_argument("--stock", type=int, default=40, help="units per drop")
    parser.add_argument("--drop-seconds", type=float, default=15.0, help="how long each drop stays live")
    parser.add_argument("--hold-seconds", type=float, default=10.0, help="how long a hold lasts before it expires")
    parser.add_argument("--targets", default="", help="comma-separated node base URLs (default: --host)")
    parser.add_argument("--record-dir", default="", help="directory for what clients were told (for the verdict)")
    parser.add_argument(
        "--host-token",
        default="",
        env_var="LOADTEST_HOST_TOKEN",
        is_secret=True,
        help="bearer token of the host API (default: the first of LIVEDROP_HOST_TOKENS)",
    )


@dataclass(frozen=True)
class Config:
    plan: Plan
    targets: tuple[str, ...]
    host_token: str
    secrets: PlatformSecrets
    records: RecordWriter


_config_lock = threading.Lock()
_config: Config | None = None


def config(environment: Any) -> Config:
    """The run's settings, built from the options once the master's options are known (workers
    receive them with their first spawn message, before any user starts)."""
    global _config
    options = environment.parsed_options
    with _config_lock:
        if _config is None or _config.plan.show_id != options.show_id:
            targets = tuple(t.strip().rstrip("/") for t in (options.targets or environment.host or "").split(",") if t)
            if not targets:
                raise ValueError("give --host or --targets: the base URL of a LiveDrop node or balancer")
            token = options.host_token or next(
                (t.strip() for t in os.environ.get("LIVEDROP_HOST_TOKENS", "").split(",") if t.strip()), ""
            )
            plan = make_plan(
                options.show_id,
                show_seconds=options.show_seconds,
                viewers=options.viewers,
                buyers=options.buyers,
                platforms=options.platforms,
                drops=options.drops,
                stock=options.stock,
                drop_seconds=options.drop_seconds,
                hold_seconds=options.hold_seconds,
            )
            records = _config.records if _config is not None else RecordWriter(options.record_dir or None)
            secrets = PlatformSecrets.from_env(os.environ)
            _config = Config(plan, targets, token, secrets, records)
        return _config


@events.init.add_listener  # type: ignore[untyped-decorator]
def _init(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    if options is None or isinstance(environment.runner, WorkerRunner):
        return
    if not options.show_id:
        # Sent to the workers with every spawn message, so all processes play the same show.
        options.show_id = "flash-" + time.strftime("%Y%m%d-%H%M%S")
    # The dispatcher shares users out by weight: at full strength, exactly the plan's counts.
    Viewer.weight, Buyer.weight, Platform.weight = options.viewers, options.buyers, options.platforms


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def _test_start(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    cfg = config(environment)
    _host_call(environment, "ensure show", lambda: HostApi(cfg.targets[0], cfg.host_token).ensure_show(cfg.plan))


def _fire(
    environment: Any, kind: str, name: str, started: float, *, size: int = 0, error: Exception | None = None
) -> None:
    environment.events.request.fire(
        request_type=kind,
        name=name,
        response_time=(time.time() - started) * 1000,
        response_length=size,
        exception=error,
        context={},
    )


def _host_call(environment: Any, name: str, action: Any) -> None:
    started = time.time()
    try:
        action()
    except (HostApiError, OSError) as exc:
        logger.error("host API %s failed: %s", name, exc)
        _fire(environment, "HOST", name, started, error=exc)
        return
    _fire(environment, "HOST", name, started)


class AnswerTimeout(Exception):
    """A request the server never answered: reported to Locust as that request's failure."""


class ServerError(Exception):
    """An error frame, a broken seq order or a refused connection, as a Locust failure."""


_user_ids = itertools.count()
_platform_turns = itertools.count()  # shared by the Platform users of a process: each order the next platform


class Viewer(User):
    """Watches the show over one WebSocket and measures what it is pushed."""

    wait_time = constant(5)
    weight = 240

    def on_start(self) -> None:
        self.cfg = config(self.environment)
        self.index = next(_user_ids)
        self.target_index = self.index % len(self.cfg.targets)
        self.token = ""
        self.last_seq: int | None = None
        self.epoch = ""
        self.seen_drops: set[str] = set()
        self.pending: dict[str, tuple[float, str]] = {}  # ref → (sent at, what)
        self.refs = itertools.count(1)
        self.jobs = gevent.pool.Group()
        self.socket: FrameSocket | None = None
        self.stopping = False
        self.failed_connects = 0
        self.prepare()
        self.open(resume=False)

    def prepare(self) -> None:
        """Before the first connection (buyers mint their token here)."""

    @property
    def target(self) -> str:
        return self.cfg.targets[self.target_index]

    def ws_url(self, resume: bool) -> str:
        base = self.target.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        query = [f"token={self.token}"] if self.token else []
        if resume and self.last_seq is not None and self.epoch:
            query += [f"resume_from={self.last_seq}", f"epoch={self.epoch}"]
        return f"{base}/ws/shows/{self.cfg.plan.show_id}" + ("?" + "&".join(query) if query else "")

    def open(self, resume: bool) -> None:
        """Connect (and resume); reported as ``WS connect``/``WS resume``: time to the first frame."""
        name = "resume" if resume else "connect"
        started = time.time()
        first = gevent.event.Event()

        def on_frame(frame: Frame, size: int, arrived: float) -> None:
            if not first.is_set():
                first.set()
                _fire(self.environment, "WS", name, started, size=size)
            self.on_frame(frame, size, arrived)

        self.socket = FrameSocket(self.ws_url(resume), on_frame, self.on_close)
        try:
            self.socket.connect()
        except Exception as exc:
            _fire(self.environment, "WS", name, started, error=exc)
            self.failed_connects += 1
            self.target_index = (self.target_index + 1) % len(self.cfg.targets)
            self.schedule_reconnect()
            return
        self.failed_connects = 0
        if not first.wait(ANSWER_TIMEOUT):
            _fire(self.environment, "WS", name, started, error=AnswerTimeout("no first frame"))

    def on_close(self, code: int | None, reason: str) -> None:
        if self.stopping:
            return
        _fire(self.environment, "WS", f"closed by server ({code})", time.time())
        if code in CLOSE_NO_RESUME:
            _fire(self.environment, "WS", "closed", time.time(), error=ServerError(f"{code} {reason}"))
            return
        # Behind a balancer the next connection lands on a live node; with a list of nodes, take
        # the next one (the one that closed may be going down).
        self.target_index = (self.target_index + 1) % len(self.cfg.targets)
        self.schedule_reconnect()

    def schedule_reconnect(self) -> None:
        if not self.stopping:
            # Jittered, so a node's viewers do not all come back in the same millisecond, and
            # backing off while no node accepts them (up to 5 s), as a well-behaved app does.
            backoff = min(5.0, 0.5 * 2**self.failed_connects)
            self.jobs.spawn(self._reconnect_later, random.uniform(0.05, backoff))

    def _reconnect_later(self, delay: float) -> None:
        gevent.sleep(delay)
        if not self.stopping:
            self.open(resume=self.last_seq is not None)

    def on_stop(self) -> None:
        self.stopping = True
        self.jobs.kill(block=False)
        if self.socket is not None:
            self.socket.close()

    # -- frames ------------------------------------------------------------------------------

    def on_frame(self, frame: Frame, size: int, arrived: float) -> None:
        kind = frame.get("type")
        if kind == "welcome":
            if frame.get("reset"):
                _fire(self.environment, "WS", "welcome reset", arrived)
            self.last_seq, self.epoch = int(frame["seq"]), str(frame["epoch"])
            for drop in frame.get("drops", []):
                if drop.get("state") == "live":
                    self.seen_drops.add(drop["id"])
            return
        if "seq" in frame:
            self.check_order(int(frame["seq"]), arrived)
        if kind == "stock":
            self.push("stock", arrived, int(frame["ts"]) / 1000, size)
        elif kind == "drop":
            drop = frame["drop"]
            if drop.get("state") == "live" and drop["id"] not in self.seen_drops:
                self.seen_drops.add(drop["id"])
                self.measure_launch(drop, arrived, size)
                self.on_new_drop(drop["id"])
        elif kind == "pong":
            self.answered(frame.get("ref"), "ping", arrived, size)
        elif kind == "error":
            self.answered(frame.get("ref"), "error", arrived, size, ServerError(f"{frame.get('code')}"))
        self.on_private(frame, size, arrived)

    def on_private(self, frame: Frame, size: int, arrived: float) -> None:
        """Answers and pushes meant for this viewer (buyers act on them)."""

    def on_new_drop(self, drop_id: str) -> None:
        """A drop went live."""

    def check_order(self, seq: int, arrived: float) -> None:
        """Every seq'd event exactly once and in order, across resumes (DESIGN §4)."""
        if self.last_seq is not None and seq != self.last_seq + 1:
            what = "repeated" if seq <= self.last_seq else "skipped"
            error = ServerError(f"seq {seq} after {self.last_seq}: {what}")
            _fire(self.environment, "WS", "seq order", arrived, error=error)
        self.last_seq = seq if self.last_seq is None else max(seq, self.last_seq)

    def push(self, name: str, arrived: float, sent: float, size: int) -> None:
        self.environment.events.request.fire(
            request_type="WS push",
            name=name,
            response_time=max(0.0, (arrived - sent) * 1000),
            response_length=size,
            exception=None,
            context={},
        )

    def measure_launch(self, drop: Frame, arrived: float, size: int) -> None:
        try:
            spec = self.cfg.plan.drop(drop["id"])
        except KeyError:
            return
        ends_at = int(drop.get("ends_at") or 0)
        if ends_at:
            # The server opened the drop at ends_at - duration by Redis' clock: the launch latency.
            self.push("drop", arrived, (ends_at - spec.duration_seconds * 1000) / 1000, size)

    # -- requests and their answers ------------------------------------------------------------

    def request(self, frame: Frame, what: str) -> None:
        ref = f"{what[0]}{next(self.refs)}"
        frame["ref"] = ref
        if self.socket is None or not self.socket.connected:
            return  # reconnecting; a user on a phone would tap again
        self.pending[ref] = (time.time(), what)
        try:
            self.socket.send(frame)
        except Exception as exc:
            self.pending.pop(ref, None)
            _fire(self.environment, "WS", what, time.time(), error=exc)

    def answered(
        self, ref: Any, outcome: str, arrived: float, size: int, error: Exception | None = None
    ) -> tuple[float, str] | None:
        sent = self.pending.pop(ref, None) if isinstance(ref, str) else None
        if sent is None:
            if error is not None:
                _fire(self.environment, "WS", outcome, arrived, size=size, error=error)
            return None
        started, what = sent
        name = what if outcome in (what, "error") else f"{what} → {outcome}"
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=(arrived - started) * 1000,
            response_length=size,
            exception=error,
            context={},
        )
        return sent

    @task
    def ping(self) -> None:
        self.request({"type": "ping"}, "ping")
        self.expire_pending()

    def expire_pending(self) -> None:
        now = time.time()
        for ref, (started, what) in list(self.pending.items()):
            if now - started > ANSWER_TIMEOUT:
                del self.pending[ref]
                _fire(self.environment, "WS", what, started, error=AnswerTimeout(f"no answer in {ANSWER_TIMEOUT:g}s"))


class Buyer(Viewer):
    """A viewer with a token who reserves on every drop and then checks out, releases or
    abandons its holds."""

    wait_time = constant(1)
    weight = 60

    def prepare(self) -> None:
        self.customer = f"lt-{random.getrandbits(32):08x}-{self.index}"
        self.http = HttpSession(self.target, self.environment.events.request, self)
        self.auth = {"Authorization": f"Bearer {self.cfg.host_token}"}
        self.holds: dict[str, str] = {}  # drop → hold id (one hold per drop per buyer)
        self.sold_out: dict[str, int] = {}  # drop → retries left
        response = self.http.post(
            f"/api/shows/{self.cfg.plan.show_id}/tokens",
            json={"viewer_id": self.customer, "ttl_seconds": 3600},
            headers=self.auth,
            name="/api/shows/[show]/tokens",
        )
        response.raise_for_status()
        self.token = response.json()["token"]

    def on_new_drop(self, drop_id: str) -> None:
        # Viewers do not all tap Buy in the same millisecond: a few hundred ms of spread.
        self.jobs.spawn(self._reserve_later, drop_id, random.uniform(0.0, 0.3))

    def _reserve_later(self, drop_id: str, delay: float) -> None:
        gevent.sleep(delay)
        if drop_id not in self.holds:
            self.request({"type": "reserve", "drop": drop_id, "qty": 1}, "reserve")

    def on_private(self, frame: Frame, size: int, arrived: float) -> None:
        kind = frame.get("type")
        if kind == "reserved":
            if frame.get("from_waitlist"):
                _fire(self.environment, "WS", "waitlist hand-out", arrived, size=size)
            else:
                self.answered(frame.get("ref"), "reserved", arrived, size)
            self.got_hold(frame)
        elif kind == "rejected":
            sent = self.answered(frame.get("ref"), str(frame.get("reason")), arrived, size)
            if frame.get("reason") == "sold_out" and sent is not None and sent[1] == "reserve":
                drop = str(frame["drop"])
                if random.random() < WAITLIST_SHARE:
                    self.request({"type": "waitlist", "drop": drop, "qty": 1}, "waitlist")
                else:
                    self.sold_out.setdefault(drop, MAX_RETRIES)
        elif kind == "waitlisted":
            self.answered(frame.get("ref"), "waitlisted", arrived, size)
        elif kind == "released":
            if self.answered(frame.get("ref"), "released", arrived, size) is not None:
                self.cfg.records.write("released", customer=self.customer, hold=frame["hold"])
        elif kind == "stock":
            drop = str(frame["drop"])
            left = self.sold_out.get(drop, 0)
            if left and int(frame["available"]) > 0 and drop not in self.holds:
                self.sold_out[drop] = left - 1
                self.jobs.spawn(self._reserve_later, drop, random.uniform(0.0, 0.2))

    def got_hold(self, frame: Frame) -> None:
        drop, hold = str(frame["drop"]), str(frame["hold"])
        self.holds[drop] = hold
        self.sold_out.pop(drop, None)
        self.cfg.records.write(
            "reserved",
            customer=self.customer,
            drop=drop,
            hold=hold,
            qty=int(frame["qty"]),
            waitlist=bool(frame.get("from_waitlist")),
        )
        roll = random.random()
        if roll < CONFIRM_SHARE:
            # The checkout names the hold by its signed reference, as a real cart would.
            self.jobs.spawn(self._confirm_later, hold, str(frame.get("hold_ref", "")), random.uniform(0.3, 2.0))
        elif roll < CONFIRM_SHARE + RELEASE_SHARE:
            self.jobs.spawn(self._release_later, hold, random.uniform(0.3, 2.0))

    def _confirm_later(self, hold: str, hold_ref: str, delay: float) -> None:
        """What a checkout service does once the customer paid."""
        gevent.sleep(delay)
        with self.http.post(
            f"/api/holds/{hold_ref}/confirm",
            json={"order_ref": f"lt-{hold}"},
            headers=self.auth,
            name="/api/holds/[hold]/confirm",
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                body = response.json()
                self.cfg.records.write("confirmed", customer=self.customer, hold=hold, duplicate=body["duplicate"])
            elif response.status_code == 409:
                response.success()  # the hold expired first: a slow payer, not a server fault
            else:
                response.failure(f"HTTP {response.status_code}")

    def _release_later(self, hold: str, delay: float) -> None:
        gevent.sleep(delay)
        self.request({"type": "release", "hold": hold}, "release")


class Platform(User):
    """A commerce platform's webhook sender, selling the live drops' SKUs."""

    # An order every ~2 s per user: with the default 6 users, platforms sell about as fast as the
    # live show's checkout, and oversell only what their lagging stock view lets through.
    wait_time = between(1.0, 3.0)
    weight = 6

    def on_start(self) -> None:
        self.cfg = config(self.environment)
        index = next(_user_ids)
        self.sessions = [
            HttpSession(self.cfg.targets[(index + i) % len(self.cfg.targets)], self.environment.events.request, self)
            for i in range(len(self.cfg.targets))
        ]
        self.deliveries = Deliveries(self.cfg.secrets, random.getrandbits(40))
        self.enabled = self.cfg.secrets.enabled()
        self.live_skus: list[str] = []
        self.in_stock: list[str] = []
        self.polled = 0.0

    @task
    def order(self) -> None:
        if not self.enabled:
            return
        self.poll_live_drops()
        if not self.live_skus:
            return
        platform = self.enabled[next(_platform_turns) % len(self.enabled)]  # every platform in turn
        # Platforms sell what their own stock feed says is in stock, and that feed lags: now and
        # then they sell a sold-out drop, which is what the oversold counter is for.
        skus = self.in_stock if self.in_stock and random.random() >= OVERSELL_SHARE else self.live_skus
        flow = self.deliveries.order_flow(
            platform, random.choice(skus), random.choice((1, 1, 2)), cancel=random.random() < CANCEL_SHARE
        )
        for delivery in flow:
            if not self.deliver(delivery, self.sessions[0], duplicate=False):
                return  # as a platform would, no follow-up before the order is acknowledged
            if random.random() < DUPLICATE_SHARE:
                self.deliver(delivery, self.sessions[-1], duplicate=True)

    def poll_live_drops(self) -> None:
        if time.time() - self.polled < 1.0:
            return
        self.polled = time.time()
        with self.sessions[0].get(
            f"/api/shows/{self.cfg.plan.show_id}",
            headers={"Authorization": f"Bearer {self.cfg.host_token}"},
            name="/api/shows/[show]",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            drops = response.json()["drops"]
        live = [d for d in drops if d["stock"]["state"] == "live"]
        self.live_skus = [d["info"]["sku"] for d in live]
        self.in_stock = [d["info"]["sku"] for d in live if d["stock"]["counters"]["available"] > 0]

    def deliver(self, delivery: Delivery, session: Any, *, duplicate: bool) -> bool:
        """POST one delivery, retrying a 5xx or a lost answer twice with the same bytes (as the
        platforms do). Records it once answered 2xx; True then."""
        name = f"/webhooks/{delivery.platform.value} {delivery.label}" + (" (duplicate)" if duplicate else "")
        for _ in range(3):
            with session.post(
                f"/webhooks/{delivery.platform.value}",
                data=delivery.body,
                headers=delivery.headers,
                name=name,
                catch_response=True,
            ) as response:
                if response.status_code == 200:
                    answer = response.json().get("status", "")
                    if duplicate and answer != "duplicate":
                        response.failure(f"a duplicate delivery was answered {answer!r}")
                    self.cfg.records.write(
                        "webhook",
                        platform=delivery.platform.value,
                        key=delivery.key,
                        answer=answer,
                        effects=[e.__dict__ for e in delivery.effects],
                    )
                    return True
                response.failure(f"HTTP {response.status_code}")
                if response.status_code and response.status_code < 500:
                    return False
        return False


class FlashSale(LoadTestShape):
    """Plays the plan: ramp, launches, restocks, end of show; stops the test at its end."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.done = 0

    def reset_time(self) -> None:
        super().reset_time()  # type: ignore[no-untyped-call]
        self.done = 0

    def tick(self) -> tuple[int, float, list[type[User]]] | None:
        assert self.runner is not None  # set by Locust before the first tick
        environment = self.runner.environment
        cfg = config(environment)
        plan = cfg.plan
        elapsed: float = self.get_run_time()  # type: ignore[no-untyped-call]
        for action in plan.due(elapsed, self.done):
            self.done += 1
            gevent.spawn(self.act, environment, cfg, action)
        if elapsed >= plan.show_seconds:
            return None
        classes: list[type[User]] = [
            c for c, n in ((Viewer, plan.viewers), (Buyer, plan.buyers), (Platform, plan.platforms)) if n
        ]
        return plan.users, plan.spawn_rate, classes

    @staticmethod
    def act(environment: Any, cfg: Config, action: Action) -> None:
        api = HostApi(cfg.targets[0], cfg.host_token)
        match action.kind:
            case ActionKind.LAUNCH:
                _host_call(environment, "launch", lambda: api.launch(action.drop_id))
            case ActionKind.RESTOCK:
                request_id = f"{action.drop_id}-restock-{int(action.at * 1000)}"
                _host_call(environment, "restock", lambda: api.restock(action.drop_id, action.amount, request_id))
            case ActionKind.END_SHOW:
                _host_call(environment, "end show", lambda: api.end_show(cfg.plan.show_id))


__all__ = ["Buyer", "FlashSale", "Platform", "Viewer"]
