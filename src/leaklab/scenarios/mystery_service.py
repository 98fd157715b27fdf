"""Scenario 05, the mystery service: a leak found live, from the task dump, as with Go's pprof.

The article lists pprof's live goroutine page (`localhost:6060/debug/pprof/goroutine?debug=1`) in its
troubleshooting toolbox; this lesson's story, a leak nobody can place found by reading the biggest group
of identical stacks, is the lesson's own. Here a small asyncio service has four routes; three are
healthy. The fourth asks a pricing backend through an RPC client that keeps many calls in flight on one
connection, each caller waiting on a future in a table of pending replies (request id -> future). The
client's reply reader resolves the futures of good replies and only logs the error replies: a caller whose
request failed waits for ever, and its pending entry keeps the 64 KiB request frame (kept for a resend).

Time is compressed: a millisecond here stands for a second in the article.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import logging
import random
import struct
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from .._i18n import _

# Python's own export list (`import *`); the grader gives an answer cell ANSWER_NAMES, at the end.
__all__ = ["PAYLOAD_BYTES", "Backend", "BackendError", "Pending", "Reply", "encode"]

PAYLOAD_BYTES = 64 * 1024  # DO NOT CHANGE: the size of one request frame (the caller's basket, serialised)
logger = logging.getLogger(__name__)
CATALOG = range(1000, 1100)  # the skus the backend knows; others are unknown to it


class BackendError(Exception):
    """The backend's error reply for one call (an unknown sku), raised in the caller."""


@dataclass(frozen=True)
class Reply:
    """One reply from the backend: `value` (a price in cents) or `error`, for request `id`."""

    id: int
    value: int | None = None
    error: str | None = None


@dataclass(eq=False)
class Pending:
    """A call waiting for its reply: the caller's future, and the frame it sent (kept for a resend)."""

    future: asyncio.Future[int]
    frame: bytes = field(repr=False)


def encode(request_id: int, sku: int) -> bytes:
    """The request frame the client sends: its id, the sku, and the caller's basket (64 KiB in all)."""
    return struct.pack("!QQ", request_id, sku) + bytes(PAYLOAD_BYTES - 16)


def price_of(sku: int, *, salt: int) -> int:
    """What a backend charges for a known sku, in cents: its own price list (`salt`), only its replies tell."""
    return 199 + (sku * 37 + salt) % 5000


class Backend:
    """The pricing backend at the other end of the client's connection (in-process).

    It answers every frame after `latency_ms` to 3 x `latency_ms`, so replies come back out of order:
    a price for a known sku, an error reply ("unknown sku") for the others. Each backend has its own
    price list, so a price can only come from a reply. While `losing` is set, its replies are lost on the
    way back (a backend restarting, say): their callers never hear back.
    """

    def __init__(self, *, latency_ms: float = 1.0) -> None:
        self.latency_ms = latency_ms
        self.replies: asyncio.Queue[Reply] = asyncio.Queue()
        self.asked: Counter[int] = Counter()  # request frames received, per sku
        self.outstanding = 0  # replies not sent yet
        self.losing = False
        self._lost: list[tuple[int, int]] = []  # (request id, sku) of each frame whose reply was lost
        self._salt = random.SystemRandom().randrange(1, 5000)  # this backend's price list
        self._all_sent = asyncio.Event()
        self._all_sent.set()

    def send(self, frame: bytes) -> None:
        """Receive one request frame; its reply follows a little later."""
        request_id, sku = struct.unpack("!QQ", frame[:16])
        self.asked[sku] += 1
        if self.losing:
            self._lost.append((request_id, sku))
            return
        # A price from this backend's own list, or an error reply for a sku it does not know.
        reply = _reply_to(self, request_id, sku)
        self.outstanding += 1
        self._all_sent.clear()
        delay_s = self.latency_ms * (1 + request_id % 3) / 1000
        asyncio.get_running_loop().call_later(delay_s, self._reply, reply)

    def price(self, sku: int) -> int:
        """What this backend charges for a known sku, in cents."""
        return price_of(sku, salt=self._salt)

    def _reply(self, reply: Reply) -> None:
        self.replies.put_nowait(_delivered(self, reply))
        self.outstanding -= 1
        if not self.outstanding:
            self._all_sent.set()

    async def receive(self) -> Reply:
        """The next reply on the connection."""
        return await self.replies.get()

    async def all_replied(self) -> None:
        """Wait until every frame received so far has had its reply sent."""
        await self._all_sent.wait()


# --- the service ---------------------------------------------------------------------------------


class RpcClient:
    """Calls to the pricing backend, many in flight on one connection, matched to replies by id."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.pending: dict[int, Pending] = {}  # request id -> the call waiting for that reply
        self.last_id = 0
        self.errors = 0

    async def call(self, sku: int) -> int:
        """Ask the backend for a price in cents; raises BackendError when the backend says no."""
        self.last_id += 1
        frame = encode(self.last_id, sku)
        entry = Pending(asyncio.get_running_loop().create_future(), frame)
        self.pending[self.last_id] = entry
        self.backend.send(frame)
        return await entry.future

    async def read_replies(self) -> None:
        """The connection's reader: hands each reply to the call waiting for it."""
        while True:
            reply = await self.backend.receive()
            if reply.error:
                self.errors += 1
                logger.debug("pricing backend: request %d failed: %s", reply.id, reply.error)
            elif (entry := self.pending.pop(reply.id, None)) is not None and not entry.future.done():
                entry.future.set_result(reply.value)


@dataclass(frozen=True)
class Response:
    """What a route answers: an HTTP-like status and a body."""

    status: int
    body: str


class MysteryService:
    """A small asyncio service with four routes: /health, /catalog, /stock and /price."""

    def __init__(
        self, client_class: type = RpcClient, *, latency_ms: float = 1.0, backend: Backend | None = None
    ) -> None:
        self.backend = backend or Backend(latency_ms=latency_ms)
        self.client = client_class(self.backend)
        self.stock_levels = {sku: sku % 7 for sku in CATALOG}
        self.served: Counter[str] = Counter()
        self._reader: asyncio.Task | None = None

    async def start(self) -> MysteryService:
        """Open the connection to the backend: start the client's reply reader."""
        self._reader = asyncio.create_task(self.client.read_replies(), name="rpc-reply-reader")
        return self

    async def stop(self) -> None:
        """Shut down: stop the reply reader, and cancel every call still waiting for a reply."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        for entry in list(getattr(self.client, "pending", {}).values()):
            entry.future.cancel()
        await asyncio.sleep(0)  # the cancelled callers run once and end

    async def handle(self, route: str, arg: int) -> Response:
        """Serve one request; an unexpected exception becomes a 500."""
        self.served[route] += 1
        try:
            return await self.routes[route](self, arg)
        except Exception as exc:
            return Response(500, f"internal error: {type(exc).__name__}")

    async def health(self, _arg: int) -> Response:
        return Response(200, "ok")

    async def catalog(self, page: int) -> Response:
        await asyncio.sleep(0)  # a page from the cache
        first = CATALOG.start + 10 * (page % 10)
        return Response(200, " ".join(str(sku) for sku in range(first, first + 10)))

    async def stock(self, sku: int) -> Response:
        await asyncio.sleep(0)  # the warehouse's numbers, kept in memory
        if sku not in self.stock_levels:
            return Response(404, f"unknown sku {sku}")
        return Response(200, f"{self.stock_levels[sku]} in stock")

    async def price(self, sku: int) -> Response:
        try:
            cents = await self.client.call(sku)
        except BackendError as error:
            # Drop the traceback: it holds the client's frame, whose locals can hold the future that
            # holds this very error, a cycle only the garbage collector would free (with its frame).
            error.__traceback__ = None
            return Response(404, str(error))
        return Response(200, f"{cents / 100:.2f}")

    routes = {"/health": health, "/catalog": catalog, "/stock": stock, "/price": price}


# --- the traffic ----------------------------------------------------------------------------------


def _unknown(sku: int) -> str:
    """The message of a backend's error reply for a sku it does not know."""
    return f"unknown sku {sku}"


@dataclass(frozen=True)
class Request:
    """One request of the traffic: a route and its argument (a page or a sku)."""

    id: int
    route: str
    arg: int

    def expected(self, price: Callable[[int], int | None], refusal: Callable[[int], str] = _unknown) -> Response:
        """What a healthy service answers, given its backend's prices (None: a sku it does not know) and the
        message of its error replies."""
        if self.route == "/health":
            return Response(200, "ok")
        if self.route == "/catalog":
            first = CATALOG.start + 10 * (self.arg % 10)
            return Response(200, " ".join(str(sku) for sku in range(first, first + 10)))
        if self.arg not in CATALOG:
            return Response(404, _unknown(self.arg) if self.route == "/stock" else refusal(self.arg))
        if self.route == "/stock":
            return Response(200, f"{self.arg % 7} in stock")
        if (cents := price(self.arg)) is None:
            return Response(404, refusal(self.arg))
        return Response(200, f"{cents / 100:.2f}")


# The share of each route in the traffic: most requests ask for prices.
MIX = {"/health": 1, "/catalog": 3, "/stock": 2, "/price": 4}


def plan(requests: int, *, unknown_every: int = 4, seed: int = 5) -> list[Request]:
    """A realistic mix of requests; one in `unknown_every` of those naming a sku names an unknown one."""
    rng = random.Random(seed)
    routes = rng.choices(list(MIX), weights=list(MIX.values()), k=requests)
    planned, named = [], 0
    for i, route in enumerate(routes):
        if route in ("/stock", "/price"):
            named += 1
            arg = 9000 + i if named % unknown_every == 0 else rng.choice(CATALOG)
        else:
            arg = rng.randrange(100)
        planned.append(Request(i, route, arg))
    return planned


@dataclass
class Traffic:
    """The answers a burst of requests got, as they arrived."""

    answers: dict[int, tuple[Request, Response]] = field(default_factory=dict)
    sent: list[Request] = field(default_factory=list)
    price: Callable[[int], int | None] | None = None  # the backend's replies' prices, to check the answers with
    refusal: Callable[[int], str] = _unknown  # the message of the backend's error replies, likewise
    hung_up: list[str] = field(default_factory=list)  # callers that gave up before their reply: how each did
    # The prices the backend's replies gave, as (sku, cents): for a backend that draws each reply's own
    # (the grader's), a price answered is right when one reply for that sku gave it, each reply once.
    quoted: Counter[tuple[int, int]] | None = None

    @property
    def unanswered(self) -> list[Request]:
        """The requests still waiting for their answer."""
        return [r for r in self.sent if r.id not in self.answers]

    @property
    def wrong(self) -> list[str]:
        """One line per answered request whose answer is not what a healthy service says."""
        return [
            _(
                "{route} {arg}: answered {status} {body!r}, expected {expected_status} {expected_body!r}",
                route=r.route,
                arg=r.arg,
                status=got.status,
                body=got.body,
                expected_status=want.status,
                expected_body=want.body,
            )
            for r, got, want in self._judged()
            if got != want
        ]

    @property
    def right(self) -> int:
        """How many answered requests got what a healthy service says."""
        return sum(got == want for _r, got, want in self._judged())

    def _judged(self) -> list[tuple[Request, Response, Response]]:
        """Each answered request, what it got, and what a healthy service says: with `quoted`, a price one
        of the backend's replies for that sku gave, each reply's once (those answered exactly first)."""
        judged = [(r, got, r.expected(self.price or _no_price, self.refusal)) for r, got in self.answers.values()]
        if self.quoted is None:
            return judged
        unused = Counter(self.quoted)
        priced = [i for i, (r, _got, want) in enumerate(judged) if r.route == "/price" and want.status == 200]
        wrong = []
        for i in priced:
            r, got, _want = judged[i]
            cents = next((c for (sku, c), n in unused.items() if sku == r.arg and n and _body(c) == got.body), None)
            if cents is not None and got.status == 200:
                unused[r.arg, cents] -= 1
                judged[i] = (r, got, got)
            else:
                wrong.append(i)
        for i in wrong:
            r, got, _want = judged[i]
            cents = next((c for (sku, c), n in unused.items() if sku == r.arg and n), None)
            if cents is not None:
                unused[r.arg, cents] -= 1
            body = _body(cents) if cents is not None else _("(a price one of its replies gives)")
            judged[i] = (r, got, Response(200, body))
        return judged


def _body(cents: int) -> str:
    """A price as the /price route writes it."""
    return f"{cents / 100:.2f}"


def _no_price(sku: int) -> int:
    raise LookupError(_("no backend to ask the price of sku {sku}", sku=sku))


async def send_traffic(
    service: MysteryService,
    requests: int = 100,
    *,
    every: int = 20,
    settle: bool = True,
    into: Traffic | None = None,
    hang_ups: int = 0,
    patience_ms: float = 5.0,
    **plan_options: int,
) -> Traffic:
    """Send `requests` requests, `every` at a time between two turns of the loop, each in a task of its own.

    With `settle`, return once the backend has answered everything and the answers had a moment to
    arrive (a request still unanswered then is stuck); without it, wait for every answer. Then, with
    `hang_ups`, the backend restarts: for a moment its replies are lost, and `hang_ups` more callers ask
    for a price and give up after `patience_ms`, in turn by a timeout and by hanging up (their task
    cancelled): calls that end without a reply.
    """
    traffic = into if into is not None else Traffic()
    traffic.price = functools.partial(_quote, service.backend)
    traffic.refusal = functools.partial(_refusal, service.backend)

    async def serve(request: Request) -> None:
        traffic.answers[request.id] = (request, await service.handle(request.route, request.arg))

    tasks = []
    for request in plan(requests, **plan_options):
        traffic.sent.append(request)
        tasks.append(asyncio.create_task(serve(request), name=f"request-{request.id} {request.route}"))
        if len(tasks) % every == 0:
            await asyncio.sleep(0)
    if settle:
        await service.backend.all_replied()
        await asyncio.wait(tasks, timeout=0.01)
    else:
        await asyncio.gather(*tasks)
    if hang_ups:
        await _hang_ups(service, traffic, hang_ups, patience_ms / 1000)
    return traffic


async def _hang_ups(service: MysteryService, traffic: Traffic, callers: int, patience_s: float) -> None:
    """Callers who give up on a reply that never comes: every other one by its own timeout, the rest
    hung up (their task cancelled from outside, as a server does when the client's connection drops)."""

    async def impatient(sku: int) -> None:
        try:
            async with asyncio.timeout(patience_s):
                await service.handle("/price", sku)
        except TimeoutError:
            traffic.hung_up.append("timed out")

    async def patient(sku: int) -> None:
        try:
            await service.handle("/price", sku)
        except asyncio.CancelledError:
            traffic.hung_up.append("hung up")
            raise

    service.backend.losing = True  # the backend restarts: the replies to these frames are lost
    try:
        skus = [CATALOG[(len(traffic.hung_up) + i) % len(CATALOG)] for i in range(callers)]
        tasks = [
            asyncio.create_task((impatient if i % 2 == 0 else patient)(sku), name=f"caller-giving-up-{i}")
            for i, sku in enumerate(skus)
        ]
        await asyncio.sleep(0)  # each sends its frame, while the replies are lost
        await asyncio.sleep(2 * patience_s)  # the impatient ones have timed out by then
        for task in tasks:
            task.cancel()  # those still waiting hang up
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        service.backend.losing = False


class RunningService:
    """The service on an event loop of its own, in a thread of its own: a running process, as far as the
    notebook is concerned, which sends it traffic and asks it for its task dump from the outside."""

    def __init__(self, client_class: type = RpcClient, *, latency_ms: float = 1.0) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="mystery-service", daemon=True)
        self._thread.start()
        self.service = self._run(MysteryService(client_class, latency_ms=latency_ms).start()).result()

    def _run(self, coroutine: Awaitable[object]) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)  # type: ignore[arg-type]

    async def send(self, requests: int = 100, **options: int) -> Traffic:
        """Send the service a burst of traffic (see `send_traffic`) and wait until it has settled."""
        return await asyncio.wrap_future(self._run(send_traffic(self.service, requests, **options)))

    def stop(self) -> None:
        """Shut the service down (its stuck calls are cancelled), then its loop and its thread."""
        if self._thread.is_alive():
            self._run(self.service.stop()).result()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
            self.loop.close()

    def __enter__(self) -> RunningService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def leaky_rounds(rounds: int = 10) -> AsyncIterator[str]:
    """The leak for `leaklab run`: the service under 100 requests of mixed traffic per round."""
    service = await MysteryService().start()
    for _round in range(rounds):
        traffic = await send_traffic(service, 100)
        prices = sum(r.route == "/price" for r in traffic.sent)
        yield _(
            "100 requests ({prices} prices): {waiting} still waiting", prices=prices, waiting=len(traffic.unanswered)
        )


# --- the diagnosis: where the leaked tasks wait, measured ---------------------------------------------

from ._truth import graders_truth  # noqa: E402  # here: the lesson's dumps cite the lines above by number


@graders_truth
def _where_the_leak_waits() -> tuple[str, int]:
    """The function and line of this module's innermost frame in the biggest group of the task dump,
    measured by running the service briefly (on an event loop of its own, in a thread of its own).
    Private: the grader's truth, not a shortcut for the learner's diagnosis."""
    return _biggest_group_here()[0]


@graders_truth
@functools.cache
def _biggest_group_here() -> tuple[tuple[str, int], ...]:
    """This module's frames in the biggest group of the task dump, innermost first, measured once."""
    from .._stacks import group_stacks

    found: list[tuple[str, int]] = []

    async def main() -> None:
        service = await MysteryService().start()
        await send_traffic(service, 60)
        mine = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        biggest = group_stacks(mine)[0]
        here = Path(__file__).name
        found.extend((f.function, f.line) for f in biggest.frames if Path(f.file).name == here)
        await service.stop()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="where-the-leak-waits")
    thread.start()
    thread.join()
    if not found:
        raise RuntimeError(_("the service's traffic left no task waiting: nothing to find"))
    return tuple(found)


def check_diagnosis(function: object, line: object) -> None:
    """The notebook's visible check of a diagnosis: raises AssertionError saying what to look at again
    when `function` and `line` are not where the biggest group of the dump waits in this module's code.
    It measures the service's dump itself and never prints the answer."""
    __tracebackhide__ = True
    assert isinstance(function, str), _(
        "LEAK_FUNCTION should be a str, the function's name; it is {function!r}", function=function
    )
    assert isinstance(line, int) and not isinstance(line, bool), _(
        "LEAK_LINE should be an int, the line number; it is {line!r}", line=line
    )
    frames = _biggest_group_here()
    named = function.rsplit(".", 1)[-1]  # "RpcClient.call" is as good as "call"
    innermost, line_there = frames[0]
    if named == innermost:
        assert line == line_there, _(
            "LEAK_FUNCTION is right, but LEAK_LINE = {line} is not the line the dump gives for it: "
            "read the number after `mystery_service.py:` on that same `#` line",
            line=line,
        )
        return
    callers = [name for name, _line in frames[1:]]
    assert named not in callers, _(
        "`{named}` is in the biggest group, but it is not where the tasks wait: it calls the frame above "
        "it. The first `#` line in mystery_service.py (the innermost frame) is where they wait",
        named=named,
    )
    raise AssertionError(
        _(
            "`{named}` is not a frame of the biggest group in mystery_service.py: read the `#` lines under the "
            "first group of the grouped dump (?debug=1), the one with the biggest count",
            named=named,
        )
    )


@graders_truth
def _leak_line_in_source() -> int:
    """The line of `RpcClient.call` where a caller waits for its reply (a second witness)."""
    lines, first = inspect.getsourcelines(RpcClient.call)
    return first + next(i for i, line in enumerate(lines) if "await entry.future" in line)


# --- grading: what a fresh process runs against the learner's client --------------------------------

import weakref  # noqa: E402  # here, not above: the lesson's dumps cite the lines above by number

# The services the grader ran live on after their burst, as a server does: what their clients still
# hold (a pending entry, a frame) is then memory the grader sees as retained.
_services: list[MysteryService] = []


class _GradersBook:
    """The grader's notes on one of its backends, kept beside it, not on it: the backend is the course's own
    `Backend`, of that very class, with the same attributes (an answer that asks its type, or looks for a
    grader's attribute, sees the backend of the notebook). Its replies give prices from a list of their own
    and refuse skus of the catalogue drawn for each run, so that only a reply tells a caller its answer (not
    `price()`). Each reply's price is drawn for its frame (`_reply_to`) and noted in `quoted` as it is
    delivered: nothing computes it again (a reply worked out with `_reply_to` draws another), so it can only
    come from the reply."""

    def __init__(self, backend: Backend) -> None:
        self.draw = draw = random.SystemRandom()
        self.reply_salt = (backend._salt + draw.randrange(1, 5000)) % 5000  # never `price()`'s list
        self.refused = frozenset(draw.sample(CATALOG, 10))
        self.error_tag = f"{draw.getrandbits(32):08x}"  # in its error replies: only a reply tells their message
        self.quoted: Counter[tuple[int, int]] = Counter()  # (sku, cents) of each price reply delivered
        self.skus: dict[int, int] = {}  # request id -> the sku its frame asked for

    def note(self, reply: Reply) -> None:
        """Note a reply's price as it is delivered, for the sku its frame asked for."""
        if reply.value is not None and reply.id in self.skus:
            self.quoted[self.skus[reply.id], reply.value] += 1


# The grader's backends, each with its notes: held weakly, so that nothing of them hangs on the backend.
_books: weakref.WeakKeyDictionary[Backend, _GradersBook] = weakref.WeakKeyDictionary()


def _graders_backend(*, latency_ms: float = 1.0) -> Backend:
    """A backend for the grader: the course's `Backend`, whose replies the grader's notes (`_GradersBook`) make."""
    backend = Backend(latency_ms=latency_ms)
    _books[backend] = _GradersBook(backend)
    return backend


def _delivered(backend: Backend, reply: Reply) -> Reply:
    """`reply`, as it is delivered: a grader's backend notes its price."""
    if (book := _books.get(backend)) is not None:
        book.note(reply)
    return reply


@graders_truth  # what the grader's backend replies: only a reply may tell the answer
def _quote(backend: Backend, sku: int) -> int | None:
    """The price `backend`'s replies give for `sku`, None for a sku it does not know (the grader's
    backend: the list its replies' prices start from; each adds its own, which only the reply tells)."""
    if (book := _books.get(backend)) is not None:
        return None if sku not in CATALOG or sku in book.refused else price_of(sku, salt=book.reply_salt)
    return backend.price(sku) if sku in CATALOG else None


@graders_truth
def _refusal(backend: Backend, sku: int) -> str:
    """The message of `backend`'s error reply for a sku it does not know."""
    book = _books.get(backend)
    return f"{_unknown(sku)} (backend {book.error_tag})" if book is not None else _unknown(sku)


def _reply_to(backend: Backend, request_id: int, sku: int) -> Reply:
    """The reply `backend` sends to a frame: a price, or an error for a sku it does not know."""
    if (book := _books.get(backend)) is not None:
        book.skus[request_id] = sku
    cents = _quote(backend, sku)
    if cents is None:
        return Reply(request_id, error=_refusal(backend, sku))
    if book is not None:
        cents += book.draw.randrange(1, 10**5)  # this frame's own price: only its reply tells it
    return Reply(request_id, value=cents)


def _deliver_lost(backend: Backend) -> None:
    """The replies `backend` lost so far come after all, now: late, for callers who may have gone."""
    for request_id, sku in backend._lost:
        backend.replies.put_nowait(_delivered(backend, _reply_to(backend, request_id, sku)))
    backend._lost.clear()


# How a finished future or task lets go of its cancellation: the base classes' own methods, whatever a
# subclass says. A cancelled task keeps its CancelledError, whose traceback holds the frames it ran in.
_CANCELLATIONS = {
    cls: (cls.cancelled, cls._make_cancelled_error) for cls in (asyncio.Future, asyncio.futures._PyFuture)
}


def _futures_kept(refs: list[weakref.ref]) -> int:
    """How many of the futures behind `refs` are still alive once nothing of the grader's holds them: each
    cancelled task has let go of its CancelledError (whose traceback holds the frames it ran in, and their
    locals), and the garbage is collected. Whatever still holds one keeps it: the client's table, a default
    argument, the backend, another module, a function's attribute; no list of places to look in.
    Asked once the burst's tasks are counted: a collection during the burst could free a pending task that
    only a cycle holds."""
    import gc

    if not refs:
        return 0
    for obj in gc.get_objects():
        for cls, (cancelled, let_go) in _CANCELLATIONS.items():
            if isinstance(obj, cls) and cancelled(obj):
                let_go(obj)  # the exception it made is dropped at once
    gc.collect()
    return sum(ref() is not None for ref in refs)


def probe(
    client_class: type, *, requests: int = 200, unknown_every: int = 4, seed: int = 5, latency_ms: float = 1.0
) -> tuple[Awaitable[object], Callable[[], dict]]:
    """The burst a grader runs against an RPC client class, and a summary of it.

    First, one caller in ten asks for a price while the backend's replies are lost, and hangs up (its
    task is cancelled) once its frame has reached the backend; those replies then come after all, late,
    after as many new callers have asked (whose own replies come behind them), and each error reply with a
    message of this run's backend.
    Then the burst of mixed traffic, which a reader killed by a late reply would leave unanswered.
    After it, as many callers again hang up before a reply that never comes. A caller who hung up must end
    cancelled, with no answer. Every call is then over and must leave nothing behind: no entry in the
    client's table, no future of a call kept anywhere (asked once the burst's tasks are counted).
    """
    traffic = Traffic()
    service = MysteryService(client_class, backend=_graders_backend(latency_ms=latency_ms))
    _services.append(service)
    abandoned = max(2, requests // 10)  # callers who hang up, before a late reply and before none
    asked_before: Counter[int] = Counter()  # frames the backend had received when the burst began
    asked_in_burst: Counter[int] = Counter()
    awaited: list[weakref.ref] = []  # the futures the callers who hung up were waiting on, held weakly
    answered_anyway: list[str] = []  # what callers who hung up got, when their task did not end cancelled
    left: dict[str, int] = {}

    async def hung_up(sku: int) -> None:
        """A caller who hangs up while it waits: its task is cancelled, and must end cancelled, with nothing
        for it. What the call gave it instead, if anything, is noted."""
        got = await service.handle("/price", sku)  # its CancelledError goes on: the task ends cancelled
        answered_anyway.append(f"{got.status} {got.body!r}")

    async def hang_ups(skus: list[int]) -> None:
        backend = service.backend
        backend.losing = True
        callers = [asyncio.create_task(hung_up(sku), name="hung-up-caller") for sku in skus]
        left["hung_up"] = left.get("hung_up", 0) + len(callers)
        target = sum(backend.asked.values()) + abandoned
        for _turn in range(1000):  # turns of the loop, not time: until every frame has reached the backend
            if sum(backend.asked.values()) >= target or all(c.done() for c in callers):
                break
            await asyncio.sleep(0)
        # A task awaited is held by the run's own task factory (the grader's): only futures are followed.
        waiters = [getattr(c, "_fut_waiter", None) for c in callers]
        awaited.extend(
            weakref.ref(w) for w in waiters if isinstance(w, asyncio.Future) and not isinstance(w, asyncio.Task)
        )
        for caller in callers:
            caller.cancel()  # the caller hangs up: its call is over
        await asyncio.gather(*callers, return_exceptions=True)
        backend.losing = False

    async def meanwhile(skus: list[int]) -> None:
        """New callers ask while the late replies are still on their way, and their own replies come after
        those: each must get its own answer, never a late reply for a caller who has gone."""
        backend = service.backend
        backend.losing = True  # their replies are held back too, behind the late ones
        target = sum(backend.asked.values()) + len(skus)
        tasks = []
        for i, sku in enumerate(skus):
            request = Request(requests + i, "/price", sku)  # ids after the burst's own
            traffic.sent.append(request)
            tasks.append(asyncio.create_task(serve(request), name="caller-meanwhile"))
        for _turn in range(1000):  # turns of the loop, not time: until every frame has reached the backend
            if sum(backend.asked.values()) >= target or all(t.done() for t in tasks):
                break
            await asyncio.sleep(0)
        _deliver_lost(backend)  # the late replies first, for callers who have gone, then the new calls' own
        backend.losing = False
        for _turn in range(1000):  # every reply is in the queue: a client that hands them over is done
            if all(t.done() for t in tasks):
                break
            await asyncio.sleep(0)
        for task in tasks:
            task.cancel()  # a call not answered by then never will be: it counts as unanswered
        await asyncio.gather(*tasks, return_exceptions=True)

    async def serve(request: Request) -> None:
        traffic.answers[request.id] = (request, await service.handle(request.route, request.arg))

    async def burst() -> None:
        await service.start()
        known = [sku for sku in CATALOG if _quote(service.backend, sku) is not None]
        traffic.price = functools.partial(_quote, service.backend)
        traffic.refusal = functools.partial(_refusal, service.backend)
        traffic.quoted = _books[service.backend].quoted
        # Late replies of both kinds, a price and an error, for callers who have gone; before they come,
        # as many new callers ask for other prices (a client that reuses ids would give them those replies).
        await hang_ups([known[i % len(known)] if i % 2 == 0 else 10**6 + i for i in range(abandoned)])
        await meanwhile([known[(i + 1) % len(known)] for i in range(abandoned)])
        for _turn in range(1000):  # turns of the loop, not time: until the reader has taken them all
            if service.backend.replies.empty() or service._reader is None or service._reader.done():
                break
            await asyncio.sleep(0)
        asked_before.update(service.backend.asked)
        await send_traffic(service, requests, settle=False, into=traffic, unknown_every=unknown_every, seed=seed)
        asked_in_burst.update(service.backend.asked - asked_before)
        left["traffic_answered"] = 1
        await hang_ups([CATALOG[i % len(CATALOG)] for i in range(abandoned)])  # their replies never come
        service.backend._lost.clear()
        await asyncio.sleep(0)
        left["entries"] = len(getattr(service.client, "pending", None) or ())
        await service.stop()

    def summary() -> dict:
        """Counts as [passed, out of] per property, plus the first problems."""
        prices = [r for r in traffic.sent if r.route == "/price" and r.id < requests]  # the burst's own
        wanted = Counter(r.arg for r in prices)
        # A burst whose traffic never got all its answers: what the backend was asked up to now.
        asked = asked_in_burst if left.get("traffic_answered") else service.backend.asked - asked_before
        calls = len(prices) + 3 * abandoned
        hung_up = left.get("hung_up", 0)  # the callers who hung up, before a late reply and before none
        entries = min(left.get("entries", calls), calls)
        if "kept" not in left:  # once: after the burst, its tasks counted
            left["kept"] = _futures_kept(awaited)
        stuck = max(entries, min(left["kept"], calls))
        problems = [
            "backend asked: " + _("sku {sku} asked {asked} times for {n} requests", sku=sku, asked=asked[sku], n=n)
            for sku, n in wanted.items()
            if asked[sku] != n
        ][:3]
        if answered_anyway:
            detail = _(
                "{n} callers who hung up (their task cancelled while they waited) got an answer instead of "
                "ending cancelled, such as {got}: a call whose caller hangs up ends with CancelledError, "
                "let it go on",
                n=len(answered_anyway),
                got=answered_anyway[0],
            )
            problems.append(f"responses right: {detail}")
        problems += [f"responses right: {line}" for line in traffic.wrong[:3]]
        if entries:
            detail = _(
                "{stuck} entries still in `pending` once every call was over, answered or given up "
                "(of the {calls} calls, {abandoned} were callers who hung up before a reply that never came): "
                "a call's entry leaves in its `finally:`",
                stuck=entries,
                calls=calls,
                abandoned=abandoned,
            )
            problems.append(f"table emptied: {detail}")
        elif stuck:
            detail = _(
                "{stuck} futures of calls that were over (their callers hung up) are still kept alive, though "
                "`pending` is empty: wherever a call's future is kept (an attribute, a default argument, "
                "another module), it leaves with its call",
                stuck=stuck,
            )
            problems.append(f"table emptied: {detail}")
        return {
            "requests": requests + 3 * abandoned,
            "answered": len(traffic.answers) + 2 * abandoned,  # a caller that hung up wants no answer
            # One frame per call: a sku asked more often than it was requested counts against it too.
            "backend_asked": [sum(max(0, n - abs(asked[sku] - n)) for sku, n in wanted.items()), len(prices)],
            # A caller who hung up is right when its task ended cancelled, with no answer.
            "responses_right": [
                traffic.right + hung_up - len(answered_anyway),
                len(traffic.answers) + hung_up,
            ],
            "table_emptied": [calls - stuck, calls],
            "units": {"backend_asked": "requests", "responses_right": "requests", "table_emptied": "calls"},
            "problems": problems,
        }

    return burst(), summary


def warm_up(client_class: type) -> tuple[Awaitable[object], Callable[[], dict]]:
    """A short burst, so that first-use allocations are not counted as retained; judged with the burst's
    (a client's first calls are calls like any other)."""
    return probe(client_class, requests=20)


# The scenario contract (leaklab.scenarios): the names an answer cell may use besides `asyncio`.
ANSWER = "RpcClient"  # the name the task has the answer cell bind, whatever object it binds there
ANSWER_NAMES = ("PAYLOAD_BYTES", "Backend", "BackendError", "Pending", "Reply", "encode")
