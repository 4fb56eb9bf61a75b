"""Bot viewers for the demo: a pure decision-maker (``BotBrain``) and a thin WebSocket shell around it,
one real connection and one viewer token per bot."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Final

from redis.exceptions import RedisError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from server.chat.claims import ClaimVariant, size_word
from stock import StockEngine, StockError
from stock.types import DropState

logger = logging.getLogger("livedrop.demo")

DEFAULT_BOT_INTERVAL: Final = 25.0  # mean seconds between two reservation attempts of one bot
DEFAULT_CHAT_INTERVAL: Final = 30.0  # mean seconds between two chat messages of one bot (demo)
BOT_NAMES: Final = (
    "Ana",
    "Ben",
    "Chloé",
    "Dev",
    "Emma",
    "Femi",
    "Gus",
    "Hana",
    "Ivo",
    "Jun",
    "Kai",
    "Lea",
    "Mo",
    "Nia",
)
CHAT_LINES: Final = (
    "love this!",
    "what sizes are left?",
    "just joined 👋",
    "is it true to size?",
    "that colour 😍",
    "how long is shipping?",
    "got mine last week, great quality",
    "hello from Lisbon",
    "can you show the back?",
    "wow that went fast",
)


# -- bots: the decisions (pure) -------------------------------------------------------------------
class Outcome(enum.Enum):
    CHECKOUT = "checkout"
    RELEASE = "release"
    EXPIRE = "expire"


@dataclass(frozen=True)
class SendFrame:
    frame: dict[str, Any]


@dataclass(frozen=True)
class Checkout:
    hold: str


Action = SendFrame | Checkout


@dataclass
class _Drop:
    state: str
    available: int
    sizes: dict[str, int] = field(default_factory=dict)  # a drop with variants: variant -> available
    words: dict[str, str] = field(default_factory=dict)  # variant -> the word a claim comment names it by


def _known(d: dict[str, Any]) -> _Drop:
    variants = d.get("variants") or []
    sizes = {v["id"]: int(v["stock"]["available"]) for v in variants}
    words = {v["id"]: size_word(ClaimVariant(v["id"], tuple((v.get("options") or {}).values()))) for v in variants}
    return _Drop(d["state"], int(d["stock"]["available"]), sizes, words)


@dataclass
class BotBrain:
    """What one simulated viewer does, from the frames it receives. Pure: the caller passes the
    time and owns the socket, so the behaviour is tested without a network or a clock.

    A bot tries to reserve one unit (sometimes two) of a live drop with stock left, on average
    every ``interval`` seconds (exponential gaps, so the audience does not move in lockstep). Of
    its holds, most are checked out a few seconds later, some released, some left to expire; on
    ``sold_out`` it sometimes joins the waitlist."""

    name: str
    rng: random.Random
    interval: float = DEFAULT_BOT_INTERVAL
    checkout_share: float = 0.6
    release_share: float = 0.2
    waitlist_share: float = 0.3
    drops: dict[str, _Drop] = field(default_factory=dict)
    plans: dict[str, tuple[float, Outcome]] = field(default_factory=dict)  # hold -> (when, what)
    limited: set[str] = field(default_factory=set)  # drops where this bot reached its limit
    next_try: float = 0.0
    sent: int = 0
    # Chat (docs/chat.md): a message on average every ``chat_interval`` seconds (0: never), and a
    # share of its buy attempts made as a claim comment ("SOLD B 2", "SOLD C 42") instead of a reserve frame.
    # Its own random stream, so the shopping above behaves the same with chat on or off.
    chat_interval: float = 0.0
    claim_share: float = 0.0
    codes: dict[str, str] = field(default_factory=dict)  # drop -> claim code, from chat frames
    next_chat: float = float("inf")
    chat_rng: random.Random = field(default_factory=random.Random)

    def start(self, now: float) -> None:
        self.next_try = now + self.rng.expovariate(1 / self.interval)
        if self.chat_interval > 0:
            self.chat_rng.seed(self.name)
            self.next_chat = now + self.chat_rng.expovariate(1 / self.chat_interval)

    def next_wake(self) -> float:
        due = [when for when, outcome in self.plans.values() if outcome is not Outcome.EXPIRE]
        return min([self.next_try, self.next_chat, *due])

    def on_frame(self, frame: dict[str, Any], now: float) -> list[Action]:
        kind = frame.get("type")
        if kind == "welcome":
            self.drops = {d["id"]: _known(d) for d in frame.get("drops", [])}
        elif kind == "drop":
            d = frame["drop"]
            self.drops[d["id"]] = _known(d)
        elif kind == "stock" and frame.get("drop") in self.drops:
            known = self.drops[frame["drop"]]
            known.available = int(frame["available"])
            for name, counters in (frame.get("variants") or {}).items():
                known.sizes[name] = int(counters["available"])
        elif kind in ("chat_history", "chat_mode"):
            self.codes = dict(frame.get("codes") or {})
        elif kind == "drop_ended" and frame.get("drop") in self.drops:
            self.drops[frame["drop"]].state = DropState.CLOSED.value
        elif kind == "reserved":
            roll = self.rng.random()
            if roll < self.checkout_share:
                outcome = Outcome.CHECKOUT
            elif roll < self.checkout_share + self.release_share:
                outcome = Outcome.RELEASE
            else:
                outcome = Outcome.EXPIRE
            self.plans[frame["hold"]] = (now + self.rng.uniform(2.0, 10.0), outcome)
        elif kind in ("hold_expired", "confirmed", "released"):
            self.plans.pop(frame.get("hold", ""), None)
        elif kind == "rejected" and frame.get("reason") == "limit_exceeded":
            self.limited.add(frame["drop"])
        elif kind == "rejected" and frame.get("reason") == "sold_out" and self.rng.random() < self.waitlist_share:
            wait = {"type": "waitlist", "drop": frame["drop"], "qty": 1, "ref": self._ref()}
            if frame.get("variant"):
                wait["variant"] = frame["variant"]  # the size that sold out has its own waitlist
            return [SendFrame(wait)]
        return self.due(now)

    def due(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for hold, (when, outcome) in list(self.plans.items()):
            if when > now or outcome is Outcome.EXPIRE:
                continue
            del self.plans[hold]
            if outcome is Outcome.CHECKOUT:
                actions.append(Checkout(hold))
            else:
                actions.append(SendFrame({"type": "release", "hold": hold, "ref": self._ref()}))
        if now >= self.next_try:
            self.next_try = now + self.rng.expovariate(1 / self.interval)
            choices = sorted(
                d
                for d, s in self.drops.items()
                if s.state == DropState.LIVE.value and s.available > 0 and d not in self.limited
            )
            if choices:
                qty = 2 if self.rng.random() < 0.1 else 1
                drop = self.rng.choice(choices)
                reserve: dict[str, Any] = {"type": "reserve", "ref": self._ref(), "drop": drop, "qty": qty}
                known = self.drops[drop]
                code = self.codes.get(drop)
                text = f"SOLD {code}"
                if known.sizes:  # a drop with sizes: a size still on sale (any, if the counters lag)
                    on_sale = sorted(name for name, left in known.sizes.items() if left > 0)
                    variant = self.rng.choice(on_sale or sorted(known.sizes))
                    reserve["variant"] = variant
                    text += f" {known.words.get(variant, variant)}"  # a claim comment names the size
                if code and self.chat_rng.random() < self.claim_share:
                    text += f" {qty}" if qty > 1 else ""
                    reserve = {"type": "chat_send", "ref": reserve["ref"], "text": text}
                actions.append(SendFrame(reserve))
        if now >= self.next_chat:
            self.next_chat = now + self.chat_rng.expovariate(1 / self.chat_interval)
            line = self.chat_rng.choice(CHAT_LINES)
            actions.append(SendFrame({"type": "chat_send", "ref": self._ref(), "text": line}))
        return actions

    def _ref(self) -> str:
        self.sent += 1
        return f"{self.name}-{self.sent}"


# -- bots: the I/O shell ----------------------------------------------------------------------------
async def run_bot(url: str, brain: BotBrain, engine: StockEngine, delay: float = 0.0) -> None:
    """One bot viewer: connect, feed frames to its brain, carry out its actions; reconnect after
    a dropped connection (a node restart closes with 1012). Stops on a refused or expired token."""
    await asyncio.sleep(delay)
    loop = asyncio.get_running_loop()
    backoff = 0.5
    brain.start(loop.time())
    while True:
        try:
            async with connect(url, compression=None, open_timeout=10, max_size=2**20) as ws:
                backoff = 0.5
                while True:
                    try:
                        async with asyncio.timeout(max(0.0, brain.next_wake() - loop.time())):
                            raw = await ws.recv()
                        actions = brain.on_frame(json.loads(raw), loop.time())
                    except TimeoutError:
                        actions = brain.due(loop.time())
                    for action in actions:
                        if isinstance(action, SendFrame):
                            await ws.send(json.dumps(action.frame))
                        else:
                            await _checkout(engine, action.hold)
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code in (1008, 4401, 4404):  # 4401: its token expired
                logger.warning("demo bot %s refused: %s", brain.name, exc.rcvd.reason)
                return
        except InvalidStatus as exc:  # refused in the handshake (docs/protocol.md)
            if exc.response.status_code < 500:
                logger.warning("demo bot %s refused: HTTP %d", brain.name, exc.response.status_code)
                return
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError):
            pass
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 10.0)


async def _checkout(engine: StockEngine, hold: str) -> None:
    """The bots' "checkout service": confirms the hold as a shop would after payment."""
    with contextlib.suppress(StockError, RedisError):
        # An order ref has no '~': a variant's hold id (``<drop>~<size>.<n>``) is spelt with ':'.
        await engine.confirm(hold, order_ref=f"demo:{hold.replace('~', ':')}")
