"""`ctiserver demo`: a live hotline on the sandbox Asterisk with simulated callers and agents.

What runs: the sandbox Asterisk, the whole server in this process (SQLite, sample
customers), the sample agents logged in as `Local/<id>@sim-agents` channels (the
dialplan answers after AGENT_<id>_RING seconds, talks AGENT_<id>_TALK seconds, or
never answers when AGENT_<id>_MODE=noanswer), and a traffic generator placing
callers from config/data/customers.csv as `Local/95598@hotline` channels that
press keys in the IVR (DTMF_PLAN). Everything touches a COPY of the config folder
(dial template, ports, database), never the operator's files.

Shared-sandbox manners: callers carry our FastAGI address as a channel variable
(the global CTI_AGI stays as it is), `agent_prefix` keeps our AGENT_* globals apart
from other users' (dial `Local/<prefix><id>@sim-agents`), and on stop we hang up
only channels whose Linkedid carries this run's tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import math
import random
import secrets
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..clock import Clock, SystemClock
from ..events import Event, Kind
from ..lifecycle import TaskOwner
from . import settings
from .server import CtiServer

log = logging.getLogger(__name__)
SUPERVISOR = "demo"

# IVR key plans for config/ivr/hotline.yaml: (weight, label, plan). `w<s>` waits, digits are keys.
# Every path starts with the language menu (1 Mandarin, 2 English) after the greeting.
PLANS: tuple[tuple[float, str, str], ...] = (
    (30, "agent", "w4|1|w5|0"),  # main menu 0: billing agent
    (30, "fault", "w4|1|w5|2|w4|2"),  # fault menu 2: fault desk
    (6, "urgent", "w4|1|w5|2|w4|3"),  # fault menu 3: fallen lines, VIP tier
    (12, "bill", "w4|1|w5|1"),  # bill by bound number: self-service, then hang up
    (8, "business", "w4|1|w5|3"),  # business desk (business hours) or the closed notice
    (6, "english", "w4|2|w5|0"),  # English, then an agent
    (8, "complaint", "w4|1|w5|4|w4|0"),  # complaint menu, then an agent
)


@dataclass
class DemoOptions:
    config_dir: Path
    minutes: float = math.inf
    callers_per_minute: float = 6.0
    seed: int = 1
    http_port: int | None = None
    agi_port: int | None = None
    work_dir: Path | None = None  # default: a fresh temporary folder
    # TTS cache (bind-mounted into Asterisk); default: a running sandbox's, else the config's
    sounds_dir: Path | None = None
    agent_prefix: str = ""  # sim-agent extension prefix, keeps our AGENT_* globals apart
    noanswer_share: float = 0.1  # agents who, at any time, let the phone ring out
    talk_s: tuple[float, float] = (8.0, 40.0)
    patience_s: tuple[float, float] = (40.0, 150.0)  # how long a caller stays on the line in all
    ready_after_rona_s: float = 8.0  # a sim agent clicks "ready" again this long after a missed ring


@dataclass
class DemoInfo:
    work_dir: Path
    config_dir: Path
    db_url: str
    urls: dict[str, str]
    tag: str
    supervisor: str = ""  # desktop login of the demo supervisor (reports, wallboard)
    password: str = ""  # this run's password for the supervisor and every agent


@dataclass
class _Counters:
    placed: int = 0
    failed: int = 0
    events: dict[str, int] = field(default_factory=dict)
    last: dict[str, Event] = field(default_factory=dict)  # the latest event of each kind


def load_customers(config_dir: Path) -> list[tuple[str, str]]:
    """(phone, name) of every sample customer (their first phone number)."""
    path = Path(config_dir) / "data" / "customers.csv"
    out: list[tuple[str, str]] = []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            phone = (row.get("phones") or "").split(";")[0].strip()
            if phone.isdigit():
                out.append((phone, (row.get("name") or "").strip()))
    return out


def running_sounds_dir() -> Path | None:
    """The sounds folder of a sandbox Asterisk already running: reusing it as our TTS cache
    means `up` keeps that instance instead of restarting it under its other users."""
    from ..sandbox import chroot as sandbox

    st = sandbox.status()
    state = st.get("state")
    if st.get("running") and isinstance(state, dict) and state.get("sounds_dir"):
        return Path(str(state["sounds_dir"]))
    return None


def prepare_config(src: Path, dst: Path, opts: DemoOptions) -> None:
    """Copy the config folder and point the copy at sim agents, our ports and a demo database."""
    shutil.copytree(src, dst)
    acd_path = dst / "acd.yaml"
    acd = yaml.safe_load(acd_path.read_text(encoding="utf-8"))
    acd["dial_template"] = f"Local/{opts.agent_prefix}{{id}}@sim-agents"
    for a in acd.get("agents") or []:
        a.pop("dial", None)
    acd_path.write_text(yaml.safe_dump(acd, allow_unicode=True, sort_keys=False), encoding="utf-8")
    out_path = dst / "outbound.yaml"
    if out_path.exists():  # customers (campaigns, callbacks) are the sandbox's scripted numbers
        out = yaml.safe_load(out_path.read_text(encoding="utf-8")) or {}
        out.setdefault("dial", {})["channel"] = "Local/{number}@outbound-dest"
        out_path.write_text(yaml.safe_dump(out, allow_unicode=True, sort_keys=False), encoding="utf-8")
    srv_path = dst / "ctiserver.yaml"
    srv = yaml.safe_load(srv_path.read_text(encoding="utf-8"))
    srv.setdefault("database", {})["url"] = f"sqlite+aiosqlite:///{dst.parent / 'var' / 'demo.db'}"
    srv["database"]["journal"] = str(dst.parent / "var" / "journal.jsonl")
    srv.setdefault("http", {})
    srv.setdefault("agi", {})
    if opts.http_port is not None:
        srv["http"]["port"] = opts.http_port
    if opts.agi_port is not None:
        srv["agi"]["port"] = opts.agi_port
    srv_path.write_text(yaml.safe_dump(srv, allow_unicode=True, sort_keys=False), encoding="utf-8")
    ivr_path = dst / "ivr" / "settings.yaml"
    if ivr_path.exists():
        ivr = yaml.safe_load(ivr_path.read_text(encoding="utf-8")) or {}
        tts = ivr.setdefault("tts", {})
        # keep the operator's prompt cache (synthesis is slow), or use the one we were given
        cache = opts.sounds_dir or (src.resolve().parent / tts.get("cache_dir", "var/sounds/cti"))
        tts["cache_dir"] = str(Path(cache).resolve())
        ivr_path.write_text(yaml.safe_dump(ivr, allow_unicode=True, sort_keys=False), encoding="utf-8")


class Demo:
    """One demo run: start() brings everything up, stop() takes it down (idempotent)."""

    def __init__(self, opts: DemoOptions, clock: Clock | None = None) -> None:
        self.opts = opts
        self.clock = clock or SystemClock()  # the config check's; the server keeps its own
        self.rng = random.Random(opts.seed)
        self.tag = f"demo{secrets.randbelow(100000):05d}{self.rng.randrange(1000):03d}"  # unique per run
        self.server: CtiServer | None = None
        self.info: DemoInfo | None = None
        self.counters = _Counters()
        self._tasks = TaskOwner("demo")
        self._customers: list[tuple[str, str]] = []
        self._own_work = opts.work_dir is None
        self._work = opts.work_dir or Path(tempfile.mkdtemp(prefix="ctiserver-demo-"))
        self._ids = 0
        self._changed = asyncio.Event()
        self._globals_before: dict[str, str] = {}  # the sandbox's AGENT_* globals as we found them
        self._unborn: set[str] = set()  # callers whose Originate Asterisk accepted, not yet created
        self._born = asyncio.Event()

    # --- lifecycle

    async def start(self) -> DemoInfo:
        from .wiring import build_server

        cfg_dir = self._work / "config"
        if self.opts.sounds_dir is None:
            self.opts.sounds_dir = await asyncio.to_thread(running_sounds_dir)
        prepare_config(self.opts.config_dir, cfg_dir, self.opts)
        problems = settings.check_all(cfg_dir, self.clock.now())
        if problems:
            raise RuntimeError("demo config copy is invalid:\n" + "\n".join(map(str, problems)))
        cfg = settings.load_server(cfg_dir)
        self._customers = load_customers(cfg_dir)
        server = await build_server(cfg_dir, cfg, sandbox=True, sample_data=True, base_dir=self._work)
        self.server = server
        server.event_listeners.append(self._count)
        server.ami_listeners.append(self._on_ami)
        await server.start()
        ami = self._ami()
        deadline = time.monotonic() + 30
        while not ami.status().get("connected"):
            if time.monotonic() > deadline:
                raise RuntimeError("AMI did not connect to the sandbox Asterisk")
            await asyncio.sleep(0.2)
        await self._agents_up()
        password = secrets.token_hex(6)
        await self._users_up(server.db_url, password)
        base = f"http://{cfg.http.host}:{server.http_port}"
        self.info = DemoInfo(self._work, cfg_dir, server.db_url, {
            "wallboard": f"{base}/wallboard", "agent desktop": f"{base}/agent", "reports": f"{base}/reports",
            "metrics": f"{base}/metrics"}, self.tag, SUPERVISOR, password)
        self._tasks.spawn(self._traffic(), name="demo-traffic")
        self._tasks.spawn(self._agent_life(), name="demo-agents")
        return self.info

    async def stop(self) -> None:
        await self._tasks.aclose()
        server, self.server = self.server, None
        if server is None:
            return
        with contextlib.suppress(Exception):
            await self._hangup_ours()
        with contextlib.suppress(Exception):
            await self._restore_globals()
        # let the IVR/ACD sessions of those callers see their hangup and finish on their own
        # (the FastAGI server keeps a count, not an event, so we poll it)
        deadline = time.monotonic() + 10.0
        while server.agi is not None and server.agi.active_sessions and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        await server.stop()

    # --- helpers

    def _ami(self) -> Any:
        assert self.server is not None
        return next(iter(self.server.ami.values()))

    def _count(self, ev: Event) -> None:
        # callers Asterisk's own fallback Queue() served (any caller on this Asterisk whose CTI was out
        # of reach) are counted apart: the demo shows what the ACD did
        kind = f"{ev.kind}.fallback" if ev.data.get("fallback") is True else ev.kind
        self.counters.events[kind] = self.counters.events.get(kind, 0) + 1
        self.counters.last[kind] = ev
        self._changed.set()

    async def wait_for(self, kind: str, count: int, timeout: float) -> bool:
        """Until `count` events of `kind` were recorded (True) or `timeout` seconds passed (False)."""
        deadline = time.monotonic() + timeout
        while self.counters.events.get(kind, 0) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True

    async def _setvar(self, name: str, value: str) -> None:
        if name not in self._globals_before:
            self._globals_before[name] = (await self._ami().action("Getvar", {"Variable": name})).get("Value") or ""
        (await self._ami().action("Setvar", {"Variable": name, "Value": value})).raise_for_error("Setvar")

    async def _restore_globals(self) -> None:
        """Leave the sandbox's sim agents as we found them: one of ours told to answer would answer
        whoever uses that Asterisk next (its fallback queue rings every sim agent)."""
        for name, value in self._globals_before.items():
            with contextlib.suppress(Exception):
                await self._ami().action("Setvar", {"Variable": name, "Value": value}, timeout=5)
        self._globals_before.clear()

    def _agent_ids(self) -> list[str]:
        assert self.server is not None
        acd = self.server.features.acd
        return [a.id for a in acd.engine.cfg.agents]

    async def _set_agent(self, agent_id: str) -> None:
        """Fresh behaviour for one sim agent: ring 1-4 s, talk in talk_s, a few never answer."""
        ext = f"{self.opts.agent_prefix}{agent_id}"
        mode = "noanswer" if self.rng.random() < self.opts.noanswer_share else "answer"
        lo, hi = self.opts.talk_s
        await self._setvar(f"AGENT_{ext}_MODE", mode)
        await self._setvar(f"AGENT_{ext}_RING", str(self.rng.randint(1, 4)))
        await self._setvar(f"AGENT_{ext}_TALK", str(round(self.rng.uniform(lo, hi))))

    async def _users_up(self, db_url: str, password: str) -> None:
        """Desktop logins for this run: a supervisor (reports, wallboard) and every agent, one password."""
        from ..store.engine import make_engine
        from ..web.auth import UserExists, create_user

        engine = make_engine(db_url)
        try:
            assert self.server is not None
            agents = self.server.features.acd.engine.cfg.agents
            people = [(SUPERVISOR, "演示主管", "supervisor")] + [(a.id, a.name or a.id, "agent") for a in agents]
            for agent_no, name, role in people:
                try:
                    await create_user(engine, agent_no, name, role, password, now=self.server.clock.now())
                except UserExists:  # a reused work folder: that run's password stands
                    log.warning("demo user %s already exists; its earlier password stands", agent_no)
        finally:
            await engine.dispose()

    async def _agents_up(self) -> None:
        assert self.server is not None
        acd = self.server.features.acd
        for agent_id in self._agent_ids():
            await self._set_agent(agent_id)
            if acd.engine.agent_state(agent_id)[0] == "logged_out":
                acd.login(agent_id, ready=True)
            else:  # logged in again from a reused work folder's log (ctiserver/acd/restore.py)
                acd.set_ready(agent_id)

    async def _agent_life(self) -> None:
        """Agents change behaviour now and then, and click ready again after a missed ring."""
        assert self.server is not None
        acd = self.server.features.acd
        missed: dict[str, float] = {}
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for agent_id in self._agent_ids():
                state, reason = acd.engine.agent_state(agent_id)
                if state == "not_ready" and reason in ("rona", "unreachable"):
                    since = missed.setdefault(agent_id, now)
                    if now - since >= self.opts.ready_after_rona_s:
                        missed.pop(agent_id, None)
                        await self._set_agent(agent_id)
                        acd.set_ready(agent_id)
                else:
                    missed.pop(agent_id, None)
            if self.rng.random() < 0.1:
                await self._set_agent(self.rng.choice(self._agent_ids()))

    async def _traffic(self) -> None:
        """Poisson callers at callers_per_minute, one Originate at a time (Asterisk starts a thread each)."""
        rate = self.opts.callers_per_minute / 60.0
        if rate <= 0:
            return
        weights = [w for w, _, _ in PLANS]
        while True:
            await asyncio.sleep(self.rng.expovariate(rate))
            _, label, plan = self.rng.choices(PLANS, weights=weights)[0]
            if self._customers and self.rng.random() < 0.8:
                number, name = self.rng.choice(self._customers)
            else:
                number, name = f"139{self.rng.randrange(10**8):08d}", ""
            try:
                await self.place_call(number, name, plan)
                self.counters.placed += 1
            except Exception as exc:  # a refused Originate is reported, the demo goes on
                self.counters.failed += 1
                log.warning("demo caller %s (%s) not placed: %s", number, label, exc)

    async def place_call(self, number: str, name: str, plan: str) -> str:
        """One simulated caller; returns the Linkedid (our tag + a counter)."""
        assert self.server is not None
        self._ids += 1
        chan_id = f"{self.tag}-{self._ids}"
        agi = f"{self.server.cfg.agi.host}:{self.server.agi.port}"
        lo, hi = self.opts.patience_s
        caller_id = f'"{name}" <{number}>' if name else number
        variables = [f"SIM_CALLER_NUM={number}", f"DTMF_PLAN={plan}",
                     f"HOLD_S={round(self.rng.uniform(lo, hi))}", f"CTI_AGI={agi}"]
        if name:
            variables.append(f"SIM_CALLER_NAME={name}")
        self._unborn.add(chan_id)  # before sending: the stop may cancel us while Asterisk already has it
        try:
            (await self._ami().action("Originate", {
                "Channel": "Local/95598@hotline", "Context": "sim-callers", "Exten": "s", "Priority": "1",
                "CallerID": caller_id, "Async": "true", "ChannelId": chan_id, "OtherChannelId": f"{chan_id}b",
                "Variable": variables,
            })).raise_for_error("Originate")
        except Exception:
            self._unborn.discard(chan_id)  # refused (or never sent): nothing will be created
            raise
        return chan_id

    def _on_ami(self, _server: str, msg: Any) -> None:
        """A caller of ours was created (Newchannel of its ChannelId) or never will be (OriginateResponse)."""
        if not self._unborn or msg.get("Event") not in ("Newchannel", "OriginateResponse"):
            return
        for key in ("Uniqueid", "ChannelId"):
            if (msg.get(key) or "") in self._unborn:
                self._unborn.discard(msg.get(key))
                self._born.set()

    async def _hangup_ours(self) -> None:
        """Hang up the channels this run created (by Linkedid tag), nobody else's. An Originate accepted just
        before the stop creates its channels a moment later (later still on a busy machine): the stop first
        waits (up to 10 s) until every accepted Originate made its channel or failed, then lists again until
        a listing finds none of ours, or such a caller would walk the IVR into the fallback queue."""
        deadline = time.monotonic() + 10.0
        while self._unborn and time.monotonic() < deadline:
            self._born.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._born.wait(), deadline - time.monotonic())
        if self._unborn:
            log.warning("demo stop: %d caller(s) accepted by Asterisk were never seen created", len(self._unborn))
        for attempt in range(6):
            found = 0
            resp = await self._ami().action("CoreShowChannels", {}, timeout=10)
            for msg in resp.events:
                linked = msg.get("Linkedid") or ""
                chan = msg.get("Channel") or ""
                if linked.startswith(self.tag + "-") and chan:
                    found += 1
                    with contextlib.suppress(Exception):
                        await self._ami().action("Hangup", {"Channel": chan}, timeout=5)
            if not found and attempt:
                return
            await asyncio.sleep(0.5)


def banner(info: DemoInfo) -> str:
    lines = ["ctiserver demo is running (Ctrl-C stops it):"]
    lines += [f"  {name:<14} {url}" for name, url in info.urls.items()]
    lines += [f"  {'log in':<14} {info.supervisor} (supervisor) or an agent number 1001..1010, "
              f"password {info.password}",
              f"  {'traffic':<14} simulated callers walk the IVR and queue for the simulated agents; "
              f"the first is put through within about a minute (a line below says so)",
              f"  {'event store':<14} {info.db_url}", f"  {'config copy':<14} {info.config_dir}"]
    return "\n".join(lines)


def progress_line(c: _Counters) -> str:
    fallback = c.events.get(f"{Kind.ACD_ANSWER}.fallback", 0)
    return (f"demo: {c.placed} callers placed ({c.failed} failed); {c.events.get(Kind.ACD_ANSWER, 0)} put through "
            f"to agents, {c.events.get(Kind.ACD_ABANDON, 0)} abandoned"
            + (f"; {fallback} answered by Asterisk's fallback queue" if fallback else ""))


async def narrate(demo: Demo, every_s: float = 60.0) -> None:
    """Tell the newcomer when the first caller reaches an agent, then how it goes every minute."""
    started = time.monotonic()
    if await demo.wait_for(Kind.ACD_ANSWER, 1, timeout=600):
        ev = demo.counters.last[Kind.ACD_ANSWER]
        print(f"first call routed: caller put through to agent {ev.agent_id} (queue {ev.queue}, tier {ev.tier}) "
              f"{time.monotonic() - started:.0f} s after start; watch the wallboard", flush=True)
    while True:
        await asyncio.sleep(every_s)
        print(progress_line(demo.counters), flush=True)


async def run_demo_forever(opts: DemoOptions) -> None:
    """The CLI: start, print the URLs, run until Ctrl-C/SIGTERM or --minutes, stop cleanly."""
    demo = Demo(opts)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        info = await demo.start()
        print(banner(info), flush=True)
        story = asyncio.create_task(narrate(demo), name="demo-narrate")
        timeout = None if math.isinf(opts.minutes) else opts.minutes * 60.0
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout)
        finally:
            story.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await story
    finally:
        await demo.stop()
    print("demo stopped: " + progress_line(demo.counters).removeprefix("demo: "), flush=True)
