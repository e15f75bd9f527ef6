"""How every part of the server starts and stops: one shape for all of them.

A *feature* is a zero-argument callable that returns an async context manager: entering
it starts the feature (its sockets, its background tasks), leaving it stops everything it
started. The callable is called once per start, so a feature can be started, stopped and
started again in one process.

    @asynccontextmanager
    async def kpi_live() -> AsyncIterator[None]:
        async with TaskOwner("kpi live") as tasks:
            tasks.spawn(today.run(), name="wallboard-kpi")
            yield

`FeatureGroup` enters its features in order on one `AsyncExitStack` and leaves them in
reverse: a feature that fails to start unwinds the ones before it (and raises), a stop
runs the stop steps of what started and only of that, each failing step logged once
with the feature's name while the others still stop. `CtiServer` is one such group
(event store, AMI links, the features of `ctiserver.app.wiring`, FastAGI, HTTP); the ACD
runtime, the outbound dialer and the ACD callbacks form a nested group, `LEADER`
(`Features.leader`), that can be stopped and started again while the rest of the
server keeps running: what a standby node must not run (see the HA issue).

Background tasks belong to a `TaskOwner` held by their feature: a task that fails is
logged once (with the owner's and task's names), and closing the owner cancels every
task it still runs and awaits them all, so a stop leaves nothing running behind it.
Unlike `asyncio.TaskGroup`, one failing task does not cancel its siblings nor the task
that started the server: a bug in a wallboard refresher must not stop the ACD.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Feature = Callable[[], AbstractAsyncContextManager[Any]]


class TaskOwner:
    """The background tasks of one feature (see the module docstring).

    A loop that talks to a database should wait between its rounds with `idle()` and return when it
    says False: `aclose(grace_s=...)` then lets a round under way finish (a task cancelled inside a
    database call may leave its connection to the garbage collector) before it cancels what is left."""

    def __init__(self, name: str, *, grace_s: float = 0.0) -> None:
        self.name = name
        self.grace_s = grace_s  # for `async with`: the grace its exit gives
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._idle: set[asyncio.Event] = set()  # the events loops wait on in idle(): set by aclose

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run `coro` as a task of this owner. Raises RuntimeError once the owner is closing."""
        if self._closing:
            coro.close()
            raise RuntimeError(f"{self.name} is stopping: no new task {name!r}")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("%s: task %s failed: %s", self.name, task.get_name(), exc, exc_info=exc)

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        """The tasks still running."""
        return frozenset(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def closing(self) -> bool:
        return self._closing

    async def idle(self, seconds: float | None, wake: asyncio.Event | None = None) -> bool:
        """Wait `seconds` (None: until woken), or until `wake` is set; at once if the owner is closing.
        True: go on; False: the owner is closing, return."""
        if self._closing:
            return False
        event = wake if wake is not None else asyncio.Event()
        self._idle.add(event)
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            pass
        finally:
            self._idle.discard(event)
        return not self._closing

    async def wait(self) -> None:
        """Until every task started so far (and any they start meanwhile) is done; does not cancel them."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def aclose(self, grace_s: float = 0.0) -> None:
        """Stop: tasks waiting in `idle()` are told to return and get up to `grace_s` seconds to end; the
        rest are cancelled; all are awaited (their failures were logged as they ended)."""
        self._closing = True
        try:
            for event in list(self._idle):
                event.set()
            if grace_s > 0 and self._tasks:
                await asyncio.wait(list(self._tasks), timeout=grace_s)
            while self._tasks:
                tasks = list(self._tasks)
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)
        finally:
            self._closing = False

    async def __aenter__(self) -> TaskOwner:
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose(self.grace_s)


class RoundJob(ABC):
    """A leader job that works in rounds: one when it starts, then one after each wait its round gives
    (a daily upkeep, a half-hour builder, an hourly prune). A round that raises is logged by `failed`
    and the next one comes after the wait that returns; tests wait on `rounds` with `wait_rounds`.
    Subclasses give `name` and `round()`; `run` is the feature."""

    name = "round job"

    def __init__(self) -> None:
        self.rounds = 0
        self._round_done = asyncio.Condition()

    @abstractmethod
    async def round(self) -> float:
        """One round; returns the seconds to wait before the next."""

    def failed(self, exc: Exception) -> float:
        """A round raised: log it, return the seconds to wait before the next."""
        log.warning("%s: a round failed (%s)", self.name, exc)
        return 60.0

    def enabled(self) -> bool:
        return True

    async def _loop(self, tasks: TaskOwner) -> None:
        while True:
            try:
                wait_s = await self.round()
            except Exception as exc:  # the database away, a lock not granted in time: the next round
                wait_s = self.failed(exc)
            async with self._round_done:
                self.rounds += 1
                self._round_done.notify_all()
            if not await tasks.idle(max(0.0, wait_s)):
                return

    async def wait_rounds(self, n: int) -> None:
        """Until `n` rounds have run (tests)."""
        async with self._round_done:
            await self._round_done.wait_for(lambda: self.rounds >= n)

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Any]:
        async with TaskOwner(self.name, grace_s=5.0) as tasks:
            if self.enabled():
                tasks.spawn(self._loop(tasks), name=self.name.replace(" ", "-"))
            yield self


class Startable(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@asynccontextmanager
async def started(obj: Startable) -> AsyncIterator[Startable]:
    """An object with `start()`/`stop()` as a feature: stopped on the way out (also if the start failed
    half-way, so `stop` must cope with a partial start)."""
    try:
        await obj.start()
        yield obj
    finally:
        await obj.stop()


class _Step:
    """One feature inside a group: a failure to stop is logged with its name and does not stop the others."""

    def __init__(self, group: str, name: str, cm: AbstractAsyncContextManager[Any]) -> None:
        self.group, self.name, self.cm = group, name, cm

    async def __aenter__(self) -> Any:
        return await self.cm.__aenter__()

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool:
        try:
            return bool(await self.cm.__aexit__(et, exc, tb))
        except Exception:
            log.exception("%s: stopping %s failed", self.group, self.name)
            return False


class FeatureGroup:
    """Features started in order and stopped in reverse, as one; startable again after a stop.

    `start`/`stop` may be called at any time (they are serialised); the group is itself a feature
    (`group()` returns its context manager) so groups nest."""

    def __init__(self, name: str, features: Iterable[tuple[str, Feature]] = ()) -> None:
        self.name = name
        self._features: list[tuple[str, Feature]] = list(features)
        self._stack: AsyncExitStack | None = None
        self._lock = asyncio.Lock()
        self.started_total = 0  # completed starts (tests, /metrics)
        self.start_times: list[tuple[str, float]] = []  # the last start: (feature, seconds), with a clock given

    def add(self, name: str, feature: Feature) -> None:
        """Append a feature; it takes part from the next start on."""
        self._features.append((name, feature))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._features]

    @property
    def members(self) -> list[tuple[str, Feature]]:
        """(name, feature) in start order; a nested group is its FeatureGroup (docs draw the tree)."""
        return list(self._features)

    @property
    def running(self) -> bool:
        return self._stack is not None

    async def start(self, clock: Callable[[], float] | None = None) -> None:
        """Enter every feature in order; if one fails, leave those that started and raise. With `clock`
        (seconds), how long each feature took to start is kept in `start_times`."""
        async with self._lock:
            if self._stack is not None:
                raise RuntimeError(f"{self.name} is already running")
            stack = AsyncExitStack()
            self.start_times = []
            try:
                for name, feature in self._features:
                    began = clock() if clock is not None else 0.0
                    await stack.enter_async_context(_Step(self.name, name, feature()))
                    if clock is not None:
                        self.start_times.append((name, clock() - began))
            except BaseException:
                await stack.aclose()
                raise
            self._stack = stack
            self.started_total += 1

    async def stop(self) -> None:
        """Leave the features that started, in reverse order; nothing if the group is not running."""
        async with self._lock:
            stack, self._stack = self._stack, None
            if stack is not None:
                await stack.aclose()

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[FeatureGroup]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    def __call__(self) -> AbstractAsyncContextManager[FeatureGroup]:
        return self._running()
