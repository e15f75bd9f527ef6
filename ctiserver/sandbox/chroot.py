"""The sandbox Asterisk: Debian's own Asterisk 22 (from `sid`) in a debootstrap chroot.

A newcomer (and the test suite) gets a real Asterisk with one command, no
packages installed on the host beyond debootstrap. The chroot is built once
into a cache folder (about a minute, 500 MB); `up` installs this project's
`asterisk/*.conf` as the whole of /etc/asterisk (no Debian sample files, so no
default surprises), mounts /proc and /dev, bind-mounts the CTI's TTS cache at
/var/lib/asterisk/sounds/cti (so prompts play as `cti/<hash>`), starts
`asterisk -f` in the background and waits until AMI answers. `down` stops it by
pid and unmounts (never lazily: a busy mount is an error, not a leftover).

AMI and SIP ports default to 5038/5060 and can be moved (`CTISERVER_ASTERISK_AMI_PORT`,
`CTISERVER_ASTERISK_SIP_PORT`) so a second chroot can run beside the first.

The mirror is read from the machine's own apt sources at run time; no host
name is written into the repository.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/var/cache/ctiserver/asterisk-root")
AMI_HOST, AMI_PORT, AMI_USER, AMI_SECRET = "127.0.0.1", 5038, "ctiserver", "ctisandbox"
SIP_PORT = 5060
SOUNDS_IN_CHROOT = "var/lib/asterisk/sounds/cti"
SOUNDS_LINK = "usr/share/asterisk/sounds/cti"  # where Debian's Asterisk (astdatadir) looks for `cti/...`
STATE_FILE = "ctiserver-sandbox.json"
PRISTINE_ETC = "etc/asterisk.dist"


class SandboxError(RuntimeError):
    """The sandbox could not be built, started or stopped; the message says why."""


@dataclass(frozen=True)
class SandboxInfo:
    root: str
    pid: int
    ami_host: str
    ami_port: int
    ami_user: str
    ami_secret: str
    sounds_dir: str | None
    log_path: str
    sip_port: int = SIP_PORT
    config_hash: str = ""


def root_dir(root: Path | str | None = None) -> Path:
    if root is not None:
        return Path(root)
    return Path(os.environ.get("CTISERVER_ASTERISK_ROOT", str(DEFAULT_ROOT)))


def config_dir() -> Path:
    """This project's Asterisk configuration: the one place that knows where it lives.

    Looked up in order: $CTISERVER_ASTERISK_CONFIG, package data (`ctiserver/asterisk/`, for an
    installed wheel), the repository's `asterisk/` next to the package, `./asterisk`.
    """
    env = os.environ.get("CTISERVER_ASTERISK_CONFIG")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parents[1]  # ctiserver/
    for candidate in (package / "asterisk", package.parent / "asterisk", Path.cwd() / "asterisk"):
        if (candidate / "extensions.conf").exists():
            return candidate
    raise SandboxError("cannot find the asterisk/ configuration folder (set CTISERVER_ASTERISK_CONFIG)")


def apt_mirror() -> str:
    """The Debian mirror this machine already uses (from its apt sources)."""
    candidates: list[str] = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in path.read_text(errors="replace").splitlines():
            if line.strip().lower().startswith("uris:"):
                candidates += line.split(":", 1)[1].split()
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "deb":
                url = next((p for p in parts[1:] if "://" in p), None)
                if url:
                    candidates.append(url)
    for url in candidates:
        if "security" not in url and "updates" not in url:
            return url.rstrip("/")
    if candidates:
        return candidates[0].rstrip("/")
    raise SandboxError("no apt mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list")


def _install_debootstrap() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "debootstrap"]
    if subprocess.run(install, capture_output=True, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
        subprocess.run(install, capture_output=True, env=env)
    if shutil.which("debootstrap") is None:
        raise SandboxError("debootstrap is not installed and apt-get could not install it")


def ensure_chroot(root: Path | str | None = None) -> Path:
    """Build the Asterisk chroot if it is not there yet (into DIR.tmp, renamed when complete).

    A lock next to DIR makes a second caller (another test session) wait for the first build
    instead of starting its own; a half-built DIR.tmp from a killed build is thrown away.
    """
    root = root_dir(root)
    if (root / "usr/sbin/asterisk").exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.with_name(root.name + ".build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / "usr/sbin/asterisk").exists():
            return root  # built by whoever held the lock before us
        if shutil.which("debootstrap") is None:
            _install_debootstrap()
        tmp = root.with_name(root.name + ".tmp")
        if tmp.exists():
            _unmount_all(tmp)
            shutil.rmtree(tmp)
        mirror = apt_mirror()
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=asterisk,asterisk-modules", "sid", str(tmp), mirror],
            capture_output=True, text=True)
        if proc.returncode != 0 or not (tmp / "usr/sbin/asterisk").exists():
            raise SandboxError(f"debootstrap failed ({proc.returncode}): "
                               f"{proc.stderr[-2000:] or proc.stdout[-2000:]}")
        tmp.rename(root)
    return root


# --- mounts --------------------------------------------------------------------
def _mounts() -> list[str]:
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out.append(parts[1].replace("\\040", " "))
    return out


def _is_mounted(path: Path) -> bool:
    return str(path) in _mounts()


def _mount(args: list[str]) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SandboxError(f"mount {' '.join(args)} failed: {proc.stderr.strip()}")


def _unmount_all(root: Path, tries: int = 10) -> None:
    """Unmount everything under `root`, deepest first; a mount still busy after `tries` is an error.

    No `umount -l`: a lazily detached /dev or sounds bind would survive inside the chroot's
    namespace and a later `rmtree` could reach the host's files through it.
    """
    prefix = str(root.resolve()) + "/"
    for _ in range(tries):
        left = sorted((m for m in _mounts() if m.startswith(prefix)), key=len, reverse=True)
        if not left:
            return
        for target in left:
            subprocess.run(["umount", target], capture_output=True)
        if any(m.startswith(prefix) for m in _mounts()):
            time.sleep(0.3)
    left = [m for m in _mounts() if m.startswith(prefix)]
    if left:
        raise SandboxError(f"still mounted (busy?): {', '.join(left)}")


# --- processes -----------------------------------------------------------------
def _pids_in(root: Path) -> list[int]:
    """Processes whose root directory is our chroot (what a stale pid file cannot tell)."""
    want = str(root.resolve())
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "root") == want:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _stop_pids(pids: list[int], grace_s: float = 10.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        _reap(pid)


# --- AMI probe --------------------------------------------------------------------
def _ami_login(s: socket.socket, events: str) -> None:
    s.sendall(f"Action: Login\r\nUsername: {AMI_USER}\r\nSecret: {AMI_SECRET}\r\n"
              f"Events: {events}\r\nActionID: probe1\r\n\r\n".encode())


def ami_ready(host: str = AMI_HOST, port: int | None = None, timeout: float = 2.0) -> bool:
    """True when AMI accepts our login and answers a Ping."""
    try:
        with socket.create_connection((host, port or ami_port()), timeout=timeout) as s:
            s.settimeout(timeout)
            _ami_login(s, "off")
            s.sendall(b"Action: Ping\r\nActionID: probe2\r\n\r\n")
            buf = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if b"ActionID: probe2" in buf and b"Pong" in buf:
                    return b"Authentication accepted" in buf
                if b"Authentication failed" in buf:
                    return False
                chunk = s.recv(4096)
                if not chunk:
                    return False
                buf += chunk
    except OSError:
        return False
    return False


def _wait_fully_booted(port: int, timeout: float = 15.0) -> bool:
    """AMI answers before every module is up; Asterisk says `FullyBooted` when PJSIP and the dialplan are."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((AMI_HOST, port), timeout=2) as s:
                s.settimeout(1)
                _ami_login(s, "system")
                buf = b""
                while time.monotonic() < deadline:
                    if b"Event: FullyBooted" in buf:
                        return True
                    try:
                        chunk = s.recv(4096)
                    except TimeoutError:
                        break
                    if not chunk:
                        break
                    buf += chunk
        except OSError:
            pass
        time.sleep(0.3)
    return False


# --- install and run ----------------------------------------------------------------
def ami_port() -> int:
    return int(os.environ.get("CTISERVER_ASTERISK_AMI_PORT", AMI_PORT))


def sip_port() -> int:
    return int(os.environ.get("CTISERVER_ASTERISK_SIP_PORT", SIP_PORT))


def render_config(name: str, text: str, ami: int, sip: int) -> str:
    """Our config file as installed: only the listening ports can differ from the repo's."""
    if name == "manager.conf":
        return re.sub(r"(?m)^port\s*=\s*\d+", f"port = {ami}", text)
    if name == "pjsip.conf":
        return re.sub(r"(?m)^bind\s*=\s*127\.0\.0\.1:\d+", f"bind = 127.0.0.1:{sip}", text)
    return text


def config_hash(src: Path, ami: int, sip: int) -> str:
    """Fingerprint of what `install_config` would write: a running sandbox with another is stale."""
    h = hashlib.sha256(f"{ami}:{sip}".encode())
    for conf in sorted(src.glob("*.conf")):
        h.update(conf.name.encode() + b"\0" + conf.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _write_moh(root: Path) -> None:
    """Minbase ships no hold music: a soft two-tone chime, 8 kHz mono 16-bit."""
    target = root / "var/lib/asterisk/moh/default"
    target.mkdir(parents=True, exist_ok=True)
    path = target / "chime.wav"
    if path.exists():
        return
    rate, frames = 8000, bytearray()
    for i in range(rate * 6):
        t = i / rate
        tone = 523.25 if (t % 3) < 1.5 else 659.25
        env = 0.5 * (1 - math.cos(2 * math.pi * ((t % 1.5) / 1.5)))
        frames += struct.pack("<h", int(2500 * env * math.sin(2 * math.pi * tone * t)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))


def install_config(root: Path, src: Path, ami: int = AMI_PORT, sip: int = SIP_PORT) -> None:
    """/etc/asterisk becomes exactly our `*.conf` files: nothing from Debian's samples loads."""
    etc = root / "etc/asterisk"
    pristine = root / PRISTINE_ETC
    if etc.exists() and not pristine.exists():
        etc.rename(pristine)  # keep Debian's samples once, for reading
    if etc.exists():
        shutil.rmtree(etc)
    etc.mkdir(parents=True)
    for conf in sorted(src.glob("*.conf")):
        (etc / conf.name).write_text(render_config(conf.name, conf.read_text(), ami, sip))


def _prepare_sounds(root: Path) -> Path:
    """The `cti` sounds mount point, and the link from where Asterisk looks for `cti/...`."""
    cti = root / SOUNDS_IN_CHROOT
    cti.mkdir(parents=True, exist_ok=True)
    link = root / SOUNDS_LINK
    if link.is_symlink():
        if os.readlink(link) == "/" + SOUNDS_IN_CHROOT:
            return cti
        link.unlink()
    elif link.is_dir():
        if _is_mounted(link.resolve()):
            raise SandboxError(f"{link} is still mounted")
        link.rmdir()  # an older sandbox's (empty) mount point
    link.symlink_to("/" + SOUNDS_IN_CHROOT)
    return cti


def _state(root: Path) -> dict[str, object]:
    try:
        return dict(json.loads((root / STATE_FILE).read_text()))
    except (OSError, ValueError):
        return {}


def _info_from_state(state: dict[str, object], pid: int) -> SandboxInfo | None:
    try:
        return SandboxInfo(**{**state, "pid": pid})  # type: ignore[arg-type]
    except TypeError:
        return None


def up(root: Path | str | None = None, config_src: Path | None = None, sounds_dir: Path | None = None,
       wait_s: float = 60.0) -> SandboxInfo:
    """Start the sandbox Asterisk (or return the running one if it matches) and wait until AMI answers.

    A running instance is reused only when it serves the same sounds folder, ports and config
    files; otherwise it is restarted, so an edited dialplan is never silently stale.
    """
    root = ensure_chroot(root_dir(root)).resolve()
    src = config_src or config_dir()
    ami, sip = ami_port(), sip_port()
    sounds = str(Path(sounds_dir).resolve()) if sounds_dir is not None else None
    digest = config_hash(src, ami, sip)
    state = _state(root)
    running = [p for p in _pids_in(root) if _alive(p)]
    if running and state.get("sounds_dir") == sounds and state.get("config_hash") == digest \
            and ami_ready(port=ami):
        reused = _info_from_state(state, running[0])
        if reused is not None:
            return reused
    down(root)
    install_config(root, src, ami, sip)
    _write_moh(root)
    for d in ("var/run/asterisk", "var/log/asterisk", "var/spool/asterisk", "var/lib/asterisk"):
        (root / d).mkdir(parents=True, exist_ok=True)
    cti = _prepare_sounds(root)
    _mount(["-t", "proc", "proc", str(root / "proc")])
    _mount(["--bind", "/dev", str(root / "dev")])
    if sounds is not None:
        Path(sounds).mkdir(parents=True, exist_ok=True)
        _mount(["--bind", sounds, str(cti)])
    log_path = root / "var/log/asterisk/ctiserver-sandbox.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(["chroot", str(root), "asterisk", "-f", "-n", "-q"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    info = SandboxInfo(root=str(root), pid=proc.pid, ami_host=AMI_HOST, ami_port=ami, ami_user=AMI_USER,
                       ami_secret=AMI_SECRET, sounds_dir=sounds, log_path=str(log_path), sip_port=sip,
                       config_hash=digest)
    (root / STATE_FILE).write_text(json.dumps(asdict(info)))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            down(root)
            raise SandboxError(f"asterisk exited with {proc.returncode}; log tail:\n{tail}")
        if ami_ready(port=ami):
            _wait_fully_booted(ami, timeout=max(1.0, deadline - time.monotonic()))
            return info
        time.sleep(0.3)
    down(root)
    raise SandboxError(f"AMI did not answer within {wait_s:.0f} s (log: {log_path})")


def down(root: Path | str | None = None) -> None:
    """Stop Asterisk (SIGTERM, then SIGKILL) and unmount; safe when nothing runs."""
    root = root_dir(root)
    if not root.exists():
        return
    root = root.resolve()
    # by the chroot, not the pid file alone: a stale pid may since belong to someone else
    pids = [p for p in _pids_in(root) if _alive(p)]
    if pids:
        _stop_pids(pids)
    _unmount_all(root)


def restart(root: Path | str | None = None, wait_s: float = 60.0) -> SandboxInfo:
    """Stop and start again with the same sounds folder (an Asterisk restart under a live CTI)."""
    root = root_dir(root)
    sounds = _state(root.resolve()).get("sounds_dir") if root.exists() else None
    down(root)
    return up(root, sounds_dir=Path(str(sounds)) if sounds else None, wait_s=wait_s)


def status(root: Path | str | None = None) -> dict[str, object]:
    """Built? running (which pids)? does AMI answer? plus what the last `up` recorded."""
    root = root_dir(root)
    built = (root / "usr/sbin/asterisk").exists()
    state = _state(root) if built else {}
    pids = [p for p in _pids_in(root.resolve()) if _alive(p)] if built else []
    port = state.get("ami_port")
    return {"root": str(root), "built": built, "running": bool(pids), "pids": pids,
            "ami": ami_ready(port=port if isinstance(port, int) else None) if pids else False,
            "mounts": [m for m in _mounts() if m.startswith(str(root.resolve()) + "/")],
            **({"state": state} if built else {})}
