"""A multi-host HA rig on one machine: network namespaces, two sandbox Asterisks, two `ctiserver serve` nodes.

    host namespace ──bridge <p>xbr (<subnet>.1) ── relay <subnet>.1:<port> ─▶ PostgreSQL 127.0.0.1:5432
        ├─veth─ <prefix>-cti1  <subnet>.11   ctiserver serve (HTTP :8080, FastAGI :4573)
        ├─veth─ <prefix>-cti2  <subnet>.12   ctiserver serve
        ├─veth─ <prefix>-pbx1  <subnet>.21   Asterisk (AMI :5038, SIP :5060), systemname pbx1
        └─veth─ <prefix>-pbx2  <subnet>.22   Asterisk, systemname pbx2; a PJSIP trunk to pbx1 and back

Each namespace is a host: its own addresses and ports, reachable from the others over the bridge. The two
Asterisks share the sandbox chroot (seen through a private bind mount of it, so the sandbox's own start and
stop never see the rig's processes or mounts) with their own config/run/spool/log/db folders under
/var/lib/ctirig/<namespace>/ in it. Their dialplan is the repository's, with the FastAGI hosts
`CTI_AGI` = cti1|cti2 (tried in order), and every agent's phone (a sim agent) answers unless a test says
otherwise. Agents 1001-1005 are on pbx1, 1006-1010 on pbx2 (acd.yaml `server`); a caller on one server rings
an agent of the other over the trunk between them. The nodes run on one fresh PostgreSQL database (named after the
prefix and pid), migrated and loaded with the sample customers once before they start. With `ha=True` they
share one lease (`ha:` block, TTL 3 s): cti1 starts first and leads, cti2 stands by; without, each node
runs alone (both lead: the dialplan's first host takes the calls).

Everything is named after a prefix (namespaces `<prefix>-cti1`, veths `<p>x...`) and a /24 subnet, so that
several rigs (CI, helpers) can run side by side: `CTISERVER_HARIG_PREFIX`, `CTISERVER_HARIG_SUBNET` (the
first three octets), `CTISERVER_HARIG_PORT` (the relay's). `down()` removes everything the prefix names,
also after a crash (state in /tmp/ctiserver-rig-<prefix>/). Needs root and iproute2.

Used by tests/ha/ (the chaos tests) and scripts/harig.py, scripts/failover.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ctiserver.sandbox import chroot as sandbox

REPO = Path(__file__).resolve().parents[2]
NODES = ("cti1", "cti2")
PBXS = ("pbx1", "pbx2")
HOST_OCTET = {"cti1": 11, "cti2": 12, "cti3": 13, "pbx1": 21, "pbx2": 22, "pbx3": 23}
AMI_PORT, SIP_PORT, HTTP_PORT, AGI_PORT = 5038, 5060, 8080, 4573
PG = ("127.0.0.1", 5432, "postgres")
IN_CHROOT = "var/lib/ctirig"
LEASE_TTL_S = 3.0  # the nodes' ha.lease_ttl_s (the default)
AGENT_SERVERS = {**{f"100{i}": "pbx1" for i in range(1, 6)}, **{f"100{i}": "pbx2" for i in range(6, 10)},
                 "1010": "pbx2"}  # where each rig agent's phone is (acd.yaml `server`)
SOUNDS_IN_CHROOT = "var/lib/asterisk/sounds/cti"

ConfigEdit = Callable[[Path, str], None]  # (a node's config folder, node name): change it before the node starts


class RigError(RuntimeError):
    """The rig could not be built or a part of it did not come up; the message says which and why."""


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RigError(f"{' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _kill(pids: list[int], sig: int = signal.SIGTERM, grace_s: float = 10.0) -> None:
    """Signal our own processes by pid; SIGKILL whoever is still there after the grace time."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            for pid in pids:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
        time.sleep(0.05)


def _mounts() -> list[str]:
    return [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]


@dataclass
class Rig:
    """The rig (see module docstring). `up()` builds it all, `down()` removes it all (idempotent)."""

    prefix: str = field(default_factory=lambda: os.environ.get("CTISERVER_HARIG_PREFIX", "harig"))
    subnet: str = field(default_factory=lambda: os.environ.get("CTISERVER_HARIG_SUBNET", "10.231.0"))
    relay_port: int = field(default_factory=lambda: int(os.environ.get("CTISERVER_HARIG_PORT", "7399")))
    nodes: tuple[str, ...] = NODES
    pbxs: tuple[str, ...] = PBXS
    edit: ConfigEdit | None = None
    ha: bool = False  # the nodes share a lease (`ha:` block): one leads, the other stands by
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)  # empty mount points the rig made in the chroot

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9]{0,5}", self.prefix):
            raise RigError(f"rig prefix {self.prefix!r}: 1-6 lowercase letters/digits, a letter first")
        if not re.fullmatch(r"\d{1,3}\.\d{1,3}\.\d{1,3}", self.subnet):
            raise RigError(f"rig subnet {self.subnet!r}: the first three octets of a /24, e.g. 10.231.0")
        self.run_dir = Path(f"/tmp/ctiserver-rig-{self.prefix}")
        self.chroot = sandbox.root_dir(None).resolve()
        self.root = self.chroot.with_name(f"{self.chroot.name}.rig-{self.prefix}")
        self.db = f"ctirig_{self.prefix}_{os.getpid()}"

    # --- names and addresses -------------------------------------------------------
    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def veth(self, host: str) -> str:
        return f"{self.prefix}x{host}"  # host side; inside the namespace it is eth0

    @property
    def bridge(self) -> str:
        return f"{self.prefix}xbr"

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    def addr(self, host: str) -> str:
        return f"{self.subnet}.{HOST_OCTET[host]}"

    def http(self, node: str) -> str:
        return f"http://{self.addr(node)}:{HTTP_PORT}"

    def agi_hosts(self) -> str:
        return "|".join(f"{self.addr(n)}:{AGI_PORT}" for n in self.nodes)

    @property
    def db_url(self) -> str:
        return f"postgresql+asyncpg://{PG[2]}@{self.gateway}:{self.relay_port}/{self.db}"

    def ami(self, pbx: str) -> dict[str, Any]:
        """How to reach a rig Asterisk's AMI from the host (tests' own clients)."""
        return {"name": pbx, "host": self.addr(pbx), "port": AMI_PORT, "username": sandbox.AMI_USER,
                "secret": sandbox.AMI_SECRET}

    def log_path(self, part: str) -> Path:
        return self.run_dir / f"{part}.log"

    def pbx_messages(self, pbx: str) -> Path:
        """A rig Asterisk's own log (messages.log: notices, warnings and the dialplan's steps)."""
        return self.root / self._pbx_dir(pbx).lstrip("/") / "log" / "messages.log"

    # --- up ----------------------------------------------------------------------------
    def up(self) -> Rig:
        """Network, relay, database, both Asterisks, both nodes; on any failure everything is removed again."""
        self.down()
        self.run_dir.mkdir(parents=True)
        try:
            self._network()
            self._relay()
            self._database()
            self._mount()
            for pbx in self.pbxs:
                self.start_pbx(pbx)
            for node in self.nodes:
                self._node_config(node)
            self._migrate()
            for node in self.nodes:  # one after the other: the first leads (tests may rely on who leads first)
                self.start_node(node)
                self.wait_node(node)
                if self.ha and node == self.nodes[0]:
                    self._wait(lambda: self.role(self.nodes[0]) == "leader", self.procs[node], node, 30)
        except BaseException:
            self.down()
            raise
        return self

    def _network(self) -> None:
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        for host in (*self.nodes, *self.pbxs):
            ns, veth = self.ns(host), self.veth(host)
            _run("ip", "netns", "add", ns)
            _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _run("ip", "link", "set", veth, "master", self.bridge)
            _run("ip", "link", "set", veth, "up")
            _run("ip", "-n", ns, "addr", "add", f"{self.addr(host)}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", ns, "route", "add", "default", "via", self.gateway)
        self._save()

    def _spawn(self, name: str, args: list[str], *, cwd: Path | None = None,
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(self.log_path(name), "ab") as log:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=cwd,
                                    env=env, start_new_session=True)
        self.procs[name] = proc
        self._save()
        return proc

    def _relay(self) -> None:
        proc = self._spawn("relay", [sys.executable, "-m", "tests.ha.relay", self.gateway, str(self.relay_port),
                                     PG[0], str(PG[1])], cwd=REPO)
        self._wait(lambda: "relay " in self.log_path("relay").read_text(), proc, "relay", 15)

    def _psql(self, sql: str) -> None:
        _run("psql", "-X", "-q", "-h", PG[0], "-p", str(PG[1]), "-U", PG[2], "-d", "postgres", "-c", sql)

    def _database(self) -> None:
        self._psql(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        self._psql(f'CREATE DATABASE "{self.db}"')
        self._save()

    def _mount(self) -> None:
        """The chroot seen at the rig's own path (private: no mount events travel to or from the sandbox's)."""
        sandbox.ensure_chroot(self.chroot)
        self.root.mkdir(exist_ok=True)
        _run("mount", "--bind", str(self.chroot), str(self.root))
        _run("mount", "--make-private", str(self.root))
        _run("mount", "-t", "proc", "proc", str(self.root / "proc"))
        _run("mount", "--bind", "/dev", str(self.root / "dev"))
        sounds = self.sounds_dir()
        sounds.mkdir(parents=True, exist_ok=True)
        (self.root / SOUNDS_IN_CHROOT).mkdir(parents=True, exist_ok=True)
        _run("mount", "--bind", str(sounds), str(self.root / SOUNDS_IN_CHROOT))
        # no DNS in the namespaces: Asterisk looks up its host name (and a STUN root) when it sets up a call's
        # media, and a resolver waiting for an unreachable server stalls every call ~20 s. The rig's view of
        # the chroot gets a hosts file naming this host and a resolver that fails at once (files in the run
        # folder, bind-mounted over the view's own: the sandbox's chroot is not changed).
        for name, text in (("hosts", f"127.0.0.1 localhost {socket.gethostname()}\n"),
                           ("resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")):
            (self.run_dir / name).write_text(text)
            target = self.root / "etc" / name
            if not target.exists():
                target.touch()  # a mount point; removed again by down()
                self.created.append(f"etc/{name}")
                self._save()
            _run("mount", "--bind", str(self.run_dir / name), str(target))
        link = self.root / "usr/share/asterisk/sounds/cti"  # where Asterisk looks for `cti/<hash>`
        if not link.is_symlink():
            if link.is_dir():
                link.rmdir()
            link.symlink_to("/" + SOUNDS_IN_CHROOT)
        self._write_moh()

    def _write_moh(self) -> None:
        moh = self.root / "var/lib/asterisk/moh/default/chime.wav"
        if not moh.exists():  # the sandbox writes it on its first `up`; the rig may come first
            sandbox._write_moh(self.root)

    @staticmethod
    def sounds_dir() -> Path:
        """The TTS cache shared by both nodes and shown to both Asterisks (prompts are named by content)."""
        from tests.asterisk_fixture import shared_sounds_dir

        return shared_sounds_dir(sandbox.root_dir(None))

    # --- Asterisk -----------------------------------------------------------------------
    def _pbx_dir(self, pbx: str) -> str:
        return f"/{IN_CHROOT}/{self.ns(pbx)}"

    def render_pbx(self, pbx: str) -> dict[str, str]:
        """The repository's Asterisk config for one rig server: its folders and system name, AMI and SIP on
        its namespace's address, the other servers as PJSIP trunks, FastAGI to the nodes in order."""
        src = sandbox.config_dir()
        base = self._pbx_dir(pbx)
        out = {}
        for conf in sorted(src.glob("*.conf")):
            text = conf.read_text()
            if conf.name == "asterisk.conf":
                for key in ("astetcdir", "astcachedir", "astdbdir", "astspooldir", "astrundir", "astlogdir"):
                    text = re.sub(rf"(?m)^{key} => .*$", f"{key} => {base}/{key[3:-3]}", text)
                text = text.replace("[directories](!)", "[directories]", 1)  # a template is not read: use it
                text = text.replace("[options]", f"[options]\nsystemname = {pbx}", 1)
                # the dialplan's steps in log/messages.log (AGI tries, CTI_RESUME, the fallback): what a
                # caller's path through a takeover was, read when a chaos run loses one
                text = re.sub(r"(?m)^verbose = .*$", "verbose = 3", text)
            elif conf.name == "manager.conf":
                text = re.sub(r"(?m)^bindaddr\s*=.*$", f"bindaddr = {self.addr(pbx)}", text)
                text = re.sub(r"(?m)^permit\s*=.*$", f"permit = {self.subnet}.0/255.255.255.0", text)
            elif conf.name == "pjsip.conf":
                text = re.sub(r"(?m)^bind\s*=.*$", f"bind = {self.addr(pbx)}:{SIP_PORT}", text)
                text += "".join(self._trunk(other) for other in self.pbxs if other != pbx)
            elif conf.name == "extensions.conf":
                # the rig's agents answer unless a test says otherwise (AMI Setvar); kept across a restart
                answer = "".join(f"AGENT_{a}_MODE = answer\n" for a in self.agents_on(pbx))
                text = re.sub(r"(?m)^CTI_AGI\s*=.*$", f"CTI_AGI = {self.agi_hosts()}\n{answer}", text)
            out[conf.name] = text
        return out

    def _trunk(self, other: str) -> str:
        """A PJSIP trunk to another rig server, named after it: `PJSIP/<agent>@<server>` rings that server's
        agent (its calls in come to [sim-agents], the rig's agents)."""
        return (f"\n[{other}]\ntype = endpoint\ncontext = sim-agents\ndisallow = all\nallow = ulaw,alaw\n"
                f"aors = {other}\ndirect_media = no\n\n[{other}]\ntype = aor\n"
                f"contact = sip:{self.addr(other)}:{SIP_PORT}\n\n[{other}]\ntype = identify\nendpoint = {other}\n"
                f"match = {self.addr(other)}\n")

    def agents_on(self, pbx: str) -> list[str]:
        """The rig's agents whose phones are on `pbx` (acd.yaml `server`, see AGENT_SERVERS)."""
        return [a for a, s in AGENT_SERVERS.items() if s == pbx or len(self.pbxs) == 1]

    def start_pbx(self, pbx: str) -> None:
        """Write the server's config and start it in its namespace; returns once AMI answers and it booted."""
        base = self.root / self._pbx_dir(pbx).lstrip("/")
        for sub in ("etc", "cache", "db", "spool", "run", "log"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        for name, text in self.render_pbx(pbx).items():
            (base / "etc" / name).write_text(text)
        proc = self._spawn(pbx, ["ip", "netns", "exec", self.ns(pbx), "chroot", str(self.root), "asterisk", "-f",
                                 "-n", "-q", "-C", f"{self._pbx_dir(pbx)}/etc/asterisk.conf"])
        addr = self.addr(pbx)
        self._wait(lambda: sandbox.ami_ready(addr, AMI_PORT, timeout=1.0) and _fully_booted(addr), proc, pbx, 60)

    def stop(self, part: str, sig: int = signal.SIGTERM) -> None:
        """Stop one rig process (a node or an Asterisk) by its pid: SIGTERM (then SIGKILL after 10 s), or
        `sig` (SIGKILL: a crash)."""
        proc = self.procs.pop(part, None)
        if proc is not None:
            _kill([proc.pid], sig)
        self._save()

    # --- nodes --------------------------------------------------------------------------------
    def config_dir(self, node: str) -> Path:
        return self.run_dir / node / "config"

    def _node_config(self, node: str) -> None:
        cfg = self.config_dir(node)
        shutil.copytree(REPO / "config", cfg)

        def server(data: dict[str, Any]) -> None:
            data["asterisk"] = [{**self.ami(p), "ping_interval_s": 1, "ping_timeout_s": 1, "reconnect_min_s": 0.2,
                                 "reconnect_max_s": 1} for p in self.pbxs]
            data["database"].update(url=self.db_url, journal=str(self.run_dir / node / "journal.jsonl"),
                                    flush_interval_s=0.05)
            data["http"] = {"host": self.addr(node), "port": HTTP_PORT}
            data["agi"] = {**data.get("agi", {}), "host": self.addr(node), "port": AGI_PORT}
            if self.ha:
                data["ha"] = {"node": node, "lease_ttl_s": LEASE_TTL_S, "address": self.http(node)}

        def ivr(data: dict[str, Any]) -> None:
            data["tts"]["cache_dir"] = str(self.sounds_dir())

        def acd(data: dict[str, Any]) -> None:
            data["dial_template"] = "Local/{id}@sim-agents"  # the rig's agents are the dialplan's sim agents
            data["vip"] = {**data.get("vip", {}), "account_agent_wait_s": 0, "desk_wait_s": 0}  # tier order only
            if len(self.pbxs) > 1:
                for agent in data["agents"]:
                    agent["server"] = AGENT_SERVERS.get(agent["id"], self.pbxs[-1])

        def outbound(data: dict[str, Any]) -> None:  # the sandbox's scripted customers, at any hour
            data["dial"] = {**data.get("dial", {}), "channel": "Local/{number}@outbound-dest", "ring_timeout_s": 8}
            data["quiet_hours"] = {"default": [], "areas": {}}
            data["poll_s"] = 0.5

        edit_yaml(cfg / "ctiserver.yaml", server)
        edit_yaml(cfg / "outbound.yaml", outbound)
        edit_yaml(cfg / "ivr" / "settings.yaml", ivr)
        edit_yaml(cfg / "acd.yaml", acd)
        if self.edit is not None:
            self.edit(cfg, node)

    def _ctiserver(self) -> str:
        return str(Path(sys.executable).with_name("ctiserver"))

    def _migrate(self) -> None:
        """Schema and sample customers once, before any node starts (two nodes migrating at once would race)."""
        proc = subprocess.run([self._ctiserver(), "db", "upgrade", "--config", str(self.config_dir(self.nodes[0])),
                               "--sample-data"], capture_output=True, text=True, cwd=self.run_dir)
        if proc.returncode != 0:
            raise RigError(f"db upgrade failed: {proc.stderr.strip()[-2000:]}")

    def start_node(self, node: str) -> subprocess.Popen[bytes]:
        """`ctiserver serve` in the node's namespace (not waited for: see `wait_node`)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CTISERVER_")}
        return self._spawn(node, ["ip", "netns", "exec", self.ns(node), self._ctiserver(), "serve", "--config",
                                  str(self.config_dir(node))], cwd=self.run_dir / node, env=env)

    def wait_node(self, node: str, timeout: float = 90.0) -> None:
        """Until the node's /healthz answers (healthy or not: it is up and serving)."""
        def answers() -> bool:
            try:
                with urllib.request.urlopen(self.http(node) + "/healthz", timeout=2):
                    return True
            except urllib.error.HTTPError:
                return True
            except OSError:
                return False

        self._wait(answers, self.procs[node], node, timeout)

    def role(self, node: str) -> str:
        """leader / standby as the node says (its /healthz `ha`), "" if it does not answer."""
        try:
            return str(self.health(node).get("ha", {}).get("role", ""))
        except OSError:
            return ""

    def leader(self) -> str | None:
        """The node that says it leads (None while nobody does)."""
        return next((n for n in self.nodes if n in self.procs and self.role(n) == "leader"), None)

    def health(self, node: str) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.http(node) + "/healthz", timeout=5) as resp:
                return dict(json.loads(resp.read()))
        except urllib.error.HTTPError as exc:
            return dict(json.loads(exc.read()))

    # --- faults ---------------------------------------------------------------------------------
    def cut(self, host: str) -> None:
        """Take a host off the network (its veth down): it keeps running, reaching nobody."""
        _run("ip", "link", "set", self.veth(host), "down")

    def heal(self, host: str) -> None:
        _run("ip", "link", "set", self.veth(host), "up")

    # --- down ----------------------------------------------------------------------------------
    def down(self) -> None:
        """Stop every process in the rig's namespaces and the relay, unmount, delete links, namespaces,
        the database and the run folder. Safe to call at any time, also on a half-built or crashed rig."""
        state = self._load()
        pids = [p.pid for p in self.procs.values()] + [int(p) for p in state.get("pids", {}).values()]
        for host in (*self.nodes, *self.pbxs):
            ns = self.ns(host)
            if Path(f"/run/netns/{ns}").exists():
                pids += [int(p) for p in _run("ip", "netns", "pids", ns, check=False).stdout.split()]
        pids += _pids_rooted_at(self.root)
        _kill(sorted(set(pids)))
        self.procs.clear()
        prefix = str(self.root) + "/"
        for target in sorted((m for m in _mounts() if m.startswith(prefix)), key=len, reverse=True):
            _run("umount", target)
        if str(self.root) in _mounts():
            _run("umount", str(self.root))
        if self.root.exists():
            self.root.rmdir()  # an empty mount point: rmdir never reaches into the chroot
        for made in {*state.get("created", []), *self.created}:
            path = self.chroot / made
            if path.is_file() and path.stat().st_size == 0:
                with contextlib.suppress(OSError):  # another rig's view may still mount over it
                    path.unlink()
        self.created.clear()
        for host in (*self.nodes, *self.pbxs):
            if Path(f"/sys/class/net/{self.veth(host)}").exists():
                _run("ip", "link", "del", self.veth(host))
            if Path(f"/run/netns/{self.ns(host)}").exists():
                _run("ip", "netns", "del", self.ns(host))
        if Path(f"/sys/class/net/{self.bridge}").exists():
            _run("ip", "link", "del", self.bridge)
        for host in self.pbxs:
            shutil.rmtree(self.chroot / IN_CHROOT / self.ns(host), ignore_errors=True)
        for db in {state.get("db"), self.db} - {None}:
            self._psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """What of this rig still exists (empty after `down`)."""
        out = [f"netns {n}" for n in _run("ip", "netns", "list").stdout.split() if n.startswith(self.prefix + "-")]
        out += [f"link {n}" for n in os.listdir("/sys/class/net") if n.startswith(self.prefix + "x")]
        out += [f"mount {m}" for m in _mounts() if m == str(self.root) or m.startswith(f"{self.root}/")]
        out += [f"pid {p}" for p in _pids_rooted_at(self.root)]
        out += [f"folder {p}" for p in (self.run_dir, self.root) if p.exists()]
        return out

    # --- bookkeeping ------------------------------------------------------------------------------
    def _save(self) -> None:
        if self.run_dir.exists():
            (self.run_dir / "state.json").write_text(json.dumps(
                {"db": self.db, "pids": {k: p.pid for k, p in self.procs.items()}, "created": self.created}))

    def _load(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.run_dir / "state.json").read_text()))
        except (OSError, ValueError):
            return {}

    def _wait(self, ready: Callable[[], bool], proc: subprocess.Popen[bytes], part: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path(part).read_text(errors="replace")[-3000:]
                why = f"exited with {proc.returncode}" if proc.returncode is not None else f"not up in {timeout:.0f} s"
                raise RigError(f"rig {part} {why}; log tail:\n{tail}")
            time.sleep(0.1)

    def __enter__(self) -> Rig:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def _fully_booted(host: str, timeout: float = 2.0) -> bool:
    """Asterisk says `FullyBooted` (PJSIP and the dialplan loaded) to a new AMI session once it has booted."""
    try:
        with socket.create_connection((host, AMI_PORT), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(f"Action: Login\r\nUsername: {sandbox.AMI_USER}\r\nSecret: {sandbox.AMI_SECRET}\r\n"
                      f"Events: system\r\n\r\n".encode())
            buf, deadline = b"", time.monotonic() + timeout
            while b"Event: FullyBooted" not in buf and time.monotonic() < deadline:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                buf += chunk
            return b"Event: FullyBooted" in buf
    except OSError:
        return False


def _pids_rooted_at(root: Path) -> list[int]:
    want, out = str(root), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "root") == want:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
