"""Load test: N concurrent callers for M minutes through the IVR and the queues, real Asterisk, real CTI.

    .venv/bin/python scripts/loadtest.py --concurrent 100 --minutes 2 [--agents 60] [--db-url URL]

Not part of the test run (minutes long, loads the machine). What it does:

1. brings up the sandbox Asterisk (reusing a running one and its sounds folder, so a
   shared instance is not restarted), writes a copy of config/ with its own ports and
   database, `--agents` extra agents (ids 2001.., skills billing/fault/english/complaint)
   dialled as `Local/8<id>@sim-agents` (the 8 keeps our AGENT_* globals apart from tests');
2. starts the CTI in its own process: `ctiserver serve`'s code (build_server +
   run_until_signalled) with the agents logged in at start (serve has no agent-login
   API of its own yet);
3. keeps `--concurrent` callers in Asterisk at all times: each is a `Local/95598@hotline`
   channel that walks the IVR with DTMF to a queue (or to self-service), stays on the line
   20-60 s; agents answer after 1-3 s and talk 5-25 s;
4. listens on an independent AMI connection to every Newchannel/Hangup of our calls
   (tagged by Originate ChannelId) with Asterisk's own `Timestamp` header;
5. records the calls as production does (Asterisk writes into its chroot's spool, the CTI
   finalizes them there; `--no-recording`: not recorded); the recordings still spooled when
   the CTI stops are removed;
6. at the end prints: CTI events recorded and AMI events handled per second, CPU seconds
   per call of the CTI process and of Asterisk (from /proc/<pid>/stat; Asterisk's children
   included once reaped, the CTI's children, its recording encoders, apart) and their ratio,
   how many recordings were finalized during the run, what the probe in the CTI saw (scripts/loadtest_probe.py:
   CPU by subsystem and module, event-loop lag, AMI event lag from Asterisk's Timestamp to
   the store), the machine's load average, and checks that no call was lost:
   every channel Asterisk created for us has call.new/leg and call.hangup in the store,
   every call has call.end, every queued caller has an ACD outcome. Exit status 1 if not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ctiserver.ami.client import AmiClient  # noqa: E402
from ctiserver.config import AmiServer  # noqa: E402
from ctiserver.events import Kind  # noqa: E402
from ctiserver.sandbox import chroot as sandbox  # noqa: E402
from ctiserver.store.engine import make_engine  # noqa: E402
from ctiserver.store.query import fetch_events  # noqa: E402

PREFIX = "8"
PLANS = (  # (weight, plan) through config/ivr/hotline.yaml
    (35, "w4|1|w5|0"),  # billing agent
    (35, "w4|1|w5|2|w4|2"),  # fault desk
    (8, "w4|1|w5|2|w4|3"),  # urgent fault, VIP tier
    (10, "w4|2|w5|0"),  # English, agent
    (7, "w4|1|w5|4|w4|0"),  # complaint menu, agent
    (5, "w4|1|w5|9|w4|9"),  # wrong keys: retries, then an agent
)
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int, *, own: bool = True, children: bool = True) -> float:
    """utime + stime (own) and reaped children's (children), in seconds (fields 14-17 of /proc/<pid>/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return sum(int(fields[i]) for i in (*((11, 12) if own else ()), *((13, 14) if children else ()))) / TICK


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())
    free = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.strip()
    return f"nproc {os.cpu_count()}, CPU {model}, Python {platform.python_version()}\n{free}"


def write_config(work: Path, agents: int, http: int, agi: int, db_url: str, sounds: Path,
                 info: sandbox.SandboxInfo, recording: bool = True) -> Path:
    cfg = work / "config"
    shutil.copytree(ROOT / "config", cfg)
    acd = yaml.safe_load((cfg / "acd.yaml").read_text(encoding="utf-8"))
    acd["dial_template"] = f"Local/{PREFIX}{{id}}@sim-agents"
    mixes = [{"billing": 7, "english": 5}, {"fault": 7, "billing": 4}, {"fault": 6, "complaint": 6},
             {"billing": 6, "fault": 5}]
    acd["agents"] = [*acd.get("agents", []),
                     *({"id": str(2001 + i), "skills": mixes[i % len(mixes)]} for i in range(agents))]
    (cfg / "acd.yaml").write_text(yaml.safe_dump(acd, allow_unicode=True, sort_keys=False), encoding="utf-8")
    srv = yaml.safe_load((cfg / "ctiserver.yaml").read_text(encoding="utf-8"))
    srv["database"].update({"url": db_url, "journal": str(work / "journal.jsonl")})
    srv["http"] = {"host": "127.0.0.1", "port": http}
    srv["agi"] = {**srv.get("agi", {}), "host": "127.0.0.1", "port": agi}
    srv["log_level"] = "WARNING"
    # the CTI logs in to the sandbox this run uses (its own port and user), not to whatever config/ names
    srv["asterisk"] = [{**srv["asterisk"][0], "host": info.ami_host, "port": info.ami_port,
                        "username": info.ami_user, "secret": info.ami_secret, "secret_env": None}]
    (cfg / "ctiserver.yaml").write_text(yaml.safe_dump(srv, allow_unicode=True, sort_keys=False), encoding="utf-8")
    # recordings as production makes them: Asterisk writes into its chroot's spool, the CTI finalizes them there
    rec_path = cfg / "recording.yaml"
    rec = yaml.safe_load(rec_path.read_text(encoding="utf-8"))
    rec.update(spool_dir=str(Path(info.root) / rec["asterisk_dir"].lstrip("/")), root=str(work / "recordings"),
               enabled=recording)
    rec_path.write_text(yaml.safe_dump(rec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    ivr_path = cfg / "ivr" / "settings.yaml"
    ivr = yaml.safe_load(ivr_path.read_text(encoding="utf-8"))
    ivr.setdefault("tts", {})["cache_dir"] = str(sounds)
    ivr_path.write_text(yaml.safe_dump(ivr, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return cfg


def thread_cpu_s(pid: int, tid: int) -> float:
    """utime + stime of one thread of `pid` (0 when `tid` is 0 or gone)."""
    if not tid:
        return 0.0
    try:
        text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def serve_child(config_dir: str, sample_ms: float, lag_ms: float) -> None:
    """The CTI process: what `ctiserver serve --sample-data` runs, plus every agent logged in ready."""
    from ctiserver.app import settings
    from ctiserver.app.logsetup import setup_logging
    from ctiserver.app.server import run_until_signalled
    from ctiserver.app.wiring import build_server

    cfg = settings.load_server(Path(config_dir))
    setup_logging(cfg.log_level, json_lines=False)

    from scripts.loadtest_probe import Probe, print_report

    async def main() -> None:
        server = await build_server(Path(config_dir), cfg, sample_data=True)
        ready = asyncio.Event()
        probe = Probe()

        async def login_when_ready() -> None:
            await ready.wait()
            probe.attach(server)
            probe.start(sample_ms / 1000.0)
            # the load generator asks for the figures (SIGUSR1) before it stops the server: a shutdown's
            # own pauses are not what a caller meets
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, print_report, probe)
            for agent in server.features.acd.engine.agent_ids():
                server.features.acd.login(agent, ready=True)
            print("AGENTS-READY", flush=True)
            if lag_ms > 0:
                await probe.ticker(lag_ms / 1000.0)

        task = asyncio.create_task(login_when_ready())
        try:
            await run_until_signalled(server, ready)
        finally:
            task.cancel()

    asyncio.run(main())


class Watcher:
    """Independent AMI connection: Newchannel/Hangup of our channels, with Asterisk's Timestamp."""

    def __init__(self, info: sandbox.SandboxInfo, tag: str) -> None:
        self.tag = tag
        self.new: dict[str, tuple[str, float]] = {}  # uniqueid -> (linkedid, asterisk ts)
        self.hangup: dict[str, float] = {}
        self.ended = asyncio.Queue[str]()  # our caller channels (the ;1 halves) that hung up
        self.changed = asyncio.Event()
        self.client = AmiClient(AmiServer(name="watch", host=info.ami_host, port=info.ami_port,
                                          username=info.ami_user, secret=info.ami_secret), on_event=self._on)

    def _on(self, msg: Any) -> None:
        name = msg.get("Event")
        if name not in ("Newchannel", "Hangup"):
            return
        linked = msg.get("Linkedid") or ""
        if not linked.startswith(self.tag):
            return
        uid = msg.get("Uniqueid") or ""
        ts = float(msg.get("Timestamp") or time.time())
        if name == "Newchannel":
            self.new[uid] = (linked, ts)
        else:
            self.hangup[uid] = ts
            self.changed.set()
            if uid == linked:
                self.ended.put_nowait(uid)


async def setvar(client: AmiClient, name: str, value: str) -> None:
    (await client.action("Setvar", {"Variable": name, "Value": value})).raise_for_error("Setvar")


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100.0 * len(s)))]


class Setup:
    """Everything started before the event loop: sandbox, config copy, the CTI process."""

    def __init__(self, args: argparse.Namespace) -> None:
        st = sandbox.status()
        state = st.get("state")
        running_sounds = state.get("sounds_dir") if st.get("running") and isinstance(state, dict) else None
        self.sounds = Path(args.sounds_dir or running_sounds or ROOT / "var/sounds/cti").resolve()
        self.info = sandbox.up(sounds_dir=self.sounds)
        pids = sandbox.status().get("pids")
        ours = [int(p) for p in pids if Path(f"/proc/{p}/comm").read_text().strip() == "asterisk"] \
            if isinstance(pids, list) else []
        self.ast_pid = ours[0] if ours else self.info.pid
        self.work = Path(tempfile.mkdtemp(prefix="ctiserver-load-"))
        self.http, self.agi = free_port(), free_port()
        self.db_url = args.db_url or f"sqlite+aiosqlite:///{self.work / 'load.db'}"
        self.cfg_dir = write_config(self.work, args.agents, self.http, self.agi, self.db_url, self.sounds, self.info,
                                    recording=args.recording)
        self.log_path = self.work / "serve.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, __file__, "--serve-child", str(self.cfg_dir),
                                          "--sample-ms", str(args.sample_ms), "--lag-ms", str(args.lag_ms)],
                                         stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.work,
                                         env={**os.environ, "PYTHONPATH": str(ROOT)})


async def run(args: argparse.Namespace, setup: Setup) -> int:
    info, proc, work, agi, db_url, cfg_dir = (setup.info, setup.proc, setup.work, setup.agi, setup.db_url,
                                              setup.cfg_dir)
    ast_pid = setup.ast_pid
    base = f"http://127.0.0.1:{setup.http}"
    rng = random.Random(args.seed)
    tag = f"load{int(time.time()) % 100000}-"
    watcher = Watcher(info, tag)
    await watcher.client.start()
    await watcher.client.wait_connected(15)
    ami = watcher.client
    agent_ids = [f"10{n:02d}" for n in range(1, 11)] + [str(2001 + i) for i in range(args.agents)]
    for a in agent_ids:
        await setvar(ami, f"AGENT_{PREFIX}{a}_MODE", "answer")
        await setvar(ami, f"AGENT_{PREFIX}{a}_RING", str(rng.randint(1, 3)))
        await setvar(ami, f"AGENT_{PREFIX}{a}_TALK", str(rng.randint(5, 25)))
    deadline = time.monotonic() + 90
    while b"AGENTS-READY" not in await asyncio.to_thread(setup.log_path.read_bytes):
        if proc.poll() is not None or time.monotonic() > deadline:
            print(setup.log_path.read_bytes().decode(errors="replace")[-3000:], file=sys.stderr)
            raise SystemExit("the CTI process did not come up")
        await asyncio.sleep(0.3)
    await asyncio.sleep(2.0)  # AMI login and resync
    sampler = next((int(ln.split()[1]) for ln in setup.log_path.read_text(errors="replace").splitlines()
                    if ln.startswith("PROBE-SAMPLER ")), 0)  # the probe's sampler thread: not the CTI's CPU
    customers = [(ln.split(",")[2].split(";")[0], ln.split(",")[1])
                 for ln in (cfg_dir / "data/customers.csv").read_text(encoding="utf-8").splitlines()[1:] if ln]
    weights = [w for w, _ in PLANS]
    placed = 0
    refused = 0

    async def originate() -> None:
        nonlocal placed, refused
        placed += 1
        number, name = rng.choice(customers) if rng.random() < 0.7 else (f"139{rng.randrange(10**8):08d}", "")
        plan = rng.choices(PLANS, weights=weights)[0][1]
        chan_id = f"{tag}{placed}"
        variables = [f"SIM_CALLER_NUM={number}", f"DTMF_PLAN={plan}", f"HOLD_S={rng.randint(20, 60)}",
                     f"CTI_AGI=127.0.0.1:{agi}"]
        try:
            (await ami.action("Originate", {
                "Channel": "Local/95598@hotline", "Context": "sim-callers", "Exten": "s", "Priority": "1",
                "CallerID": f'"{name}" <{number}>' if name else number, "Async": "true",
                "ChannelId": chan_id, "OtherChannelId": chan_id + "b", "Variable": variables,
            })).raise_for_error("Originate")
        except Exception as exc:
            refused += 1
            print(f"originate refused: {exc}", file=sys.stderr)

    # ramp up to N callers over 10 s, then replace each caller who hangs up
    t_start = time.monotonic()
    cti0, ast0, me0 = cpu_s(proc.pid, children=False), cpu_s(ast_pid), cpu_s(os.getpid())
    tools0 = cpu_s(proc.pid, own=False)  # the CTI's children: the recordings' sox and opusenc
    sampler0 = thread_cpu_s(proc.pid, sampler)
    ev0, ami0 = metric(base, "ctiserver_events_total"), metric(base, "ctiserver_ami_events_total")
    for _ in range(args.concurrent):
        await originate()
        await asyncio.sleep(10.0 / args.concurrent)
    end_at = t_start + args.minutes * 60.0
    while time.monotonic() < end_at:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher.ended.get(), end_at - time.monotonic())
            await originate()
    # let the last callers finish (HOLD_S <= 60 s plus talk), then measure
    drain = time.monotonic() + 150
    while len(watcher.hangup) < len(watcher.new) and time.monotonic() < drain:
        watcher.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher.changed.wait(), drain - time.monotonic())
    await asyncio.sleep(3.0)  # the store's flush
    elapsed = time.monotonic() - t_start
    cti1, ast1, me1 = cpu_s(proc.pid, children=False), cpu_s(ast_pid), cpu_s(os.getpid())
    tools = cpu_s(proc.pid, own=False) - tools0
    sampled = thread_cpu_s(proc.pid, sampler) - sampler0
    cti1 -= sampled  # the CTI's CPU is the process's less the probe's sampler thread
    ev1, ami1 = metric(base, "ctiserver_events_total"), metric(base, "ctiserver_ami_events_total")
    proc.send_signal(signal.SIGUSR1)  # the probe's figures, before the shutdown
    probe: dict[str, Any] = {}
    wait_until = time.monotonic() + 30
    while not probe and time.monotonic() < wait_until:
        await asyncio.sleep(0.2)
        for line in (await asyncio.to_thread(setup.log_path.read_bytes)).decode(errors="replace").splitlines():
            if line.startswith("PROBE "):
                probe = json.loads(line[6:])
    proc.send_signal(signal.SIGTERM)
    rc = await asyncio.to_thread(proc.wait, 60)
    await watcher.client.close()
    unfinalized = discard_spooled(info, cfg_dir, tag)

    engine = make_engine(db_url)
    try:
        rows = await fetch_events(engine, since=time.time() - elapsed - 600)
    finally:
        await engine.dispose()
    ours = [e for e in rows if (e.call_id or "").startswith(tag)]
    by_kind = Counter(e.kind for e in ours)
    seen_new = {e.data.get("uniqueid"): e.ts for e in ours if e.kind in (Kind.CALL_NEW, Kind.CALL_LEG)}
    seen_hup = {e.data.get("uniqueid"): e.ts for e in ours if e.kind == Kind.CALL_HANGUP}
    ended = {e.call_id for e in ours if e.kind == Kind.CALL_END}
    calls = {linked for linked, _ in watcher.new.values()}
    missing_new = [u for u in watcher.new if u not in seen_new]
    missing_hup = [u for u in watcher.hangup if u not in seen_hup]
    still_up = [u for u in watcher.new if u not in watcher.hangup]
    missing_end = sorted(calls - {c for c in ended if c})
    queued = {e.call_id or "" for e in ours if e.kind == Kind.ACD_ENQUEUE}
    outcome = {e.call_id or "" for e in ours if e.kind in (Kind.ACD_ANSWER, Kind.ACD_ABANDON, Kind.ACD_OVERFLOW,
                                                      Kind.ACD_BLOCKED, Kind.ACD_CALLBACK)}
    no_outcome = sorted(queued - outcome)
    # a recorded channel event carries Asterisk's own Timestamp (the tracker's time): equal to the watcher's
    # unless the CTI took its time from elsewhere; how late the CTI was is the probe's figure (below)
    skew = [abs(seen_new[u] - ts) for u, (_, ts) in watcher.new.items() if u in seen_new]
    skew += [abs(seen_hup[u] - ts) for u, ts in watcher.hangup.items() if u in seen_hup]
    done = len(ended & calls)

    print(f"machine: {machine()}")
    print(f"load: {args.concurrent} concurrent callers for {args.minutes:g} min (+ drain), {len(agent_ids)} agents; "
          f"store {db_url.split(':', 1)[0]}; wall {elapsed:.0f} s; load average {os.getloadavg()}")
    print(f"calls: {placed} originated ({refused} refused), {len(calls)} seen by Asterisk, {done} ended in the store; "
          f"{len(watcher.new)} channels")
    print(f"ACD: {by_kind[Kind.ACD_ENQUEUE]} queued, {by_kind[Kind.ACD_ANSWER]} answered, "
          f"{by_kind[Kind.ACD_ABANDON]} abandoned, {by_kind[Kind.ACD_OVERFLOW]} overflowed, "
          f"{by_kind[Kind.IVR_START]} IVR sessions")
    print(f"throughput: {(ev1 - ev0) / elapsed:.1f} CTI events recorded/s, {(ami1 - ami0) / elapsed:.1f} AMI events "
          f"handled/s")
    print(f"recordings: {by_kind[Kind.RECORDING_DONE]} indexed during the run; {unfinalized} still in the spool "
          "when the CTI stopped, removed (a load test's recordings are not kept, nor left for the next server)")
    print(f"recorded times vs Asterisk's Timestamp ({len(skew)} channel events): "
          f"{sum(1 for x in skew if x > 0.0005)} differ by more than 0.5 ms")
    per = max(1, done)
    print(f"CPU per call: CTI {(cti1 - cti0) / per * 1000:.1f} ms ({cti1 - cti0:.1f} s), Asterisk "
          f"{(ast1 - ast0) / per * 1000:.1f} ms ({ast1 - ast0:.1f} s), load generator "
          f"{(me1 - me0) / per * 1000:.1f} ms ({me1 - me0:.1f} s); the probe's sampler thread in the CTI "
          f"process, left out: {sampled / per * 1000:.1f} ms ({sampled:.1f} s); the CTI's encoders (sox, opusenc: "
          f"recordings finalized during the run), apart: {tools / per * 1000:.1f} ms ({tools:.1f} s)")
    print_probe(probe, per, cti1 - cti0, ast1 - ast0)
    lost = missing_new or missing_hup or missing_end or no_outcome or still_up
    print(f"lost: {len(missing_new)} channels without call.new/leg, {len(missing_hup)} without call.hangup, "
          f"{len(missing_end)} calls without call.end, {len(no_outcome)} queued without an ACD outcome, "
          f"{len(still_up)} channels still up -> {'FAIL' if lost else 'none lost'}")
    if lost:
        print(f"  e.g. {(missing_new + missing_hup + missing_end + no_outcome + still_up)[:5]}")
    print(f"CTI exit status {rc}; work folder {work}")
    return 1 if lost or rc != 0 else 0


def discard_spooled(info: sandbox.SandboxInfo, cfg_dir: Path, tag: str) -> int:
    """Remove this run's recordings the CTI had not finalized when it stopped (a spool name starts with its
    call id, ours with `tag`); how many recordings that was."""
    from ctiserver.recording.config import load_recording_config
    from ctiserver.recording.core import AGENT, CALLER, DONE

    spool = Path(info.root) / load_recording_config(cfg_dir).asterisk_dir.lstrip("/")
    files = list(spool.glob(f"{tag}*")) if spool.is_dir() else []
    for f in files:
        f.unlink(missing_ok=True)
    return len({f.name[: -len(end)] for f in files for end in (CALLER, AGENT, DONE) if f.name.endswith(end)})


def print_probe(probe: dict[str, Any], calls: int, cti_s: float, ast_s: float) -> None:
    """The CTI's own view (scripts/loadtest_probe.py): CPU by subsystem, loop lag, AMI event lag."""
    if not probe:
        print("probe: no figures from the CTI process (see its log)")
        return
    print(f"CTI CPU / Asterisk CPU: {cti_s / max(ast_s, 1e-9):.1%} (target <= 10%)")
    loop_s = probe["loop_cpu_s"]
    print(f"CTI CPU by subsystem (event loop thread {loop_s:.1f} s, shared out by {probe['samples']['busy']} "
          f"stack samples; ms per call):")
    for area, sec in probe["areas_cpu_s"].items():
        print(f"    {area:24s} {sec / calls * 1000:7.2f} ms  {sec / max(loop_s, 1e-9):6.1%}")
    print("  the costliest modules (innermost ctiserver frame):")
    for module, sec in probe["modules_cpu_s"].items():
        print(f"    {module:32s} {sec / calls * 1000:7.2f} ms  {sec / max(loop_s, 1e-9):6.1%}")
    for name, sec in sorted(probe["threads_cpu_s"].items(), key=lambda kv: -kv[1]):
        print(f"    thread {name:17s} {sec / calls * 1000:7.2f} ms  (its own CPU, outside the loop)")
    agi, db = probe.get("agi_commands", {}), probe.get("db_round_trips", {})
    if agi:
        print(f"FastAGI commands per call: {sum(agi.values()) / calls:.1f}: "
              + ", ".join(f"{verb} {n / calls:.1f}" for verb, n in list(agi.items())[:10]))
    if db:
        print(f"PostgreSQL round trips per call (asyncpg): {sum(db.values()) / calls:.1f}; the most frequent:")
        for what, n in list(db.items())[:14]:
            print(f"    {n / calls:6.2f}  {what}")
    lag = probe["loop_lag_ms"]
    if lag["ticks"]:
        print(f"event loop lag ({probe['lag_ms']:g} ms ticker, {lag['ticks']} ticks): worst {lag['max']:.1f} ms, "
              f"p99 {lag['p99']:.1f} ms (target: no stall >= 100 ms); the ticker's own wake-ups are in the CTI's "
              "CPU above (--lag-ms 0 leaves them out)")
    else:
        print("event loop lag: not measured (--lag-ms 0: no ticker, whose wake-ups would add to the CTI's CPU)")
    stalls = probe.get("stalls", [])
    if stalls:
        print(f"stalls of 80 ms or more ({len(stalls)} listed): what the sampler saw in them, the collector's pauses")
        for st in stalls[:12]:
            print(f"    {st['lag_ms']:7.1f} ms  load {st['load']:.1f}  gc {st['gc_ms']}  {st['samples']}")
    for key, what in (("appended_lag_ms", "appended to the store"), ("written_lag_ms", "committed to the store")):
        v = probe[key]
        print(f"AMI event lag, Asterisk Timestamp -> {what} ({v['n']} call events): p50 {v['p50']:.1f} ms, "
              f"p99 {v['p99']:.1f} ms, max {v['max']:.1f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrent", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--agents", type=int, default=60, help="extra sim agents beside the ten sample ones")
    ap.add_argument("--db-url", help="event store (default: SQLite in the work folder)")
    ap.add_argument("--sounds-dir", help="TTS cache shared with Asterisk (default: the running sandbox's)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-recording", dest="recording", action="store_false",
                    help="calls not recorded (the recorder tells Asterisk so): the CTI's CPU without recordings")
    ap.add_argument("--sample-ms", type=float, default=2.0,
                    help="the probe's stack sampling period in the CTI (0: no sampling, no CPU breakdown)")
    ap.add_argument("--lag-ms", type=float, default=10.0,
                    help="the probe's loop-lag ticker period in the CTI (0: no ticker; its wake-ups cost the CTI "
                         "CPU, about 15 ms per call in the 100-call run of docs/performance.md)")
    ap.add_argument("--serve-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_child:
        serve_child(args.serve_child, args.sample_ms, args.lag_ms)
        return 0
    return asyncio.run(run(args, Setup(args)))


if __name__ == "__main__":
    sys.exit(main())
