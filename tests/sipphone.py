"""A scriptable agent softphone for tests: a minimal SIP user agent over asyncio UDP.

Registers a PJSIP endpoint (digest auth), then answers incoming calls after
`answer_after_s` seconds (or never: `None`), and hangs up after `talk_s`
seconds (or waits for the far end: `None`). It handles INVITE (100/180/200 with
an SDP offering PCMU/telephone-event), ACK, CANCEL (200 + 487), BYE, and keeps a
record of each call, including how many RTP packets Asterisk sent it, so a test
can assert that audio actually flowed.

Why not pyVoIP: it does register with Asterisk 22, but it runs calls on its own
threads with blocking sleeps; tests here live in one event loop and need exact
control of ring, answer, cancel and hang-up timing.

Only what a loopback test against Asterisk needs: no TCP/TLS, no re-INVITE from
Asterisk, no retransmission timers of our own (Asterisk retransmits; we answer
duplicates from the last response we sent), no outgoing calls. The phone can put
an answered call on hold and take it back (`hold`: a re-INVITE with a=sendonly /
a=sendrecv, as a desk phone's hold key does).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
           "c": "content-type"}


class SipError(RuntimeError):
    """The server answered a request with a failure we cannot handle (e.g. wrong password)."""


@dataclass
class SipMessage:
    """One parsed SIP request or response. Header names are lower-case; values keep their order."""

    start: str
    headers: list[tuple[str, str]]
    body: str = ""

    @property
    def is_response(self) -> bool:
        return self.start.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        return int(self.start.split()[1]) if self.is_response else 0

    @property
    def method(self) -> str:
        if self.is_response:
            return self.header("cseq").split()[-1]
        return self.start.split()[0]

    def header(self, name: str, default: str = "") -> str:
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


def parse_message(data: bytes) -> SipMessage:
    """Parse one UDP datagram holding one SIP message."""
    text = data.decode("utf-8", errors="replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded continuation line
            key, value = headers[-1]
            headers[-1] = (key, value + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers.append((COMPACT.get(key, key), value.strip()))
    return SipMessage(lines[0], headers, body)


def render(start: str, headers: list[tuple[str, str]], body: str = "") -> bytes:
    raw = body.encode()
    lines = [start, *(f"{k}: {v}" for k, v in headers if k.lower() != "content-length"),
             f"Content-Length: {len(raw)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + raw


def digest_authorization(challenge: str, method: str, uri: str, user: str, password: str,
                         cnonce: str, nc: int = 1) -> str:
    """An RFC 2617 MD5 `Authorization` value answering a `WWW-Authenticate: Digest ...` challenge."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.split(" ", 1)[1]))
    realm, nonce = params["realm"], params["nonce"]
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    qop = "auth" if "auth" in params.get("qop", "").split(",") else ""
    if qop:
        resp = hashlib.md5(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}".encode()).hexdigest()
    else:
        resp = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    value = (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
             f'response="{resp}", algorithm=MD5')
    if qop:
        value += f', qop={qop}, nc={nc:08x}, cnonce="{cnonce}"'
    if "opaque" in params:
        value += f', opaque="{params["opaque"]}"'
    return value


def pick_md5_challenge(challenges: list[str]) -> str:
    """Asterisk may offer several algorithms; this UA speaks MD5 (the default of `auth` objects)."""
    for ch in challenges:
        if "algorithm=sha" not in ch.lower().replace('"', ""):
            return ch
    raise SipError(f"no MD5 digest challenge among {challenges}")


def uri_of(name_addr: str) -> str:
    """`"Agent" <sip:1001@host>;tag=x` -> `sip:1001@host`."""
    m = re.search(r"<([^>]+)>", name_addr)
    return m.group(1) if m else name_addr.split(";")[0].strip()


@dataclass
class CallRecord:
    """What happened to one incoming call, with monotonic timestamps for timing asserts."""

    call_id: str
    caller: str
    invited_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    state: str = "ringing"  # ringing | answered | cancelled | ended
    ended_by: str = ""  # "local" (we sent BYE) | "remote" (BYE or CANCEL from Asterisk)
    rtp_packets: int = 0
    dtmf_events: int = 0
    audio: bytearray = field(default_factory=bytearray)  # PCMU payloads received, in order (what the phone hears)


@dataclass
class _Dialog:
    record: CallRecord
    invite: SipMessage
    local_tag: str
    remote_target: str
    last_response: bytes = b""
    cseq: int = 1
    task: asyncio.Task[None] | None = None
    rtp: asyncio.DatagramTransport | None = None
    sdp_version: int = 1
    speaker: asyncio.Task[None] | None = None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: object) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)  # type: ignore[operator]


class _Rtp(asyncio.DatagramProtocol):
    def __init__(self, record: CallRecord) -> None:
        self.record = record

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.record.rtp_packets += 1
        if len(data) > 1 and data[1] & 0x7F == 101:
            self.record.dtmf_events += 1
        elif len(data) > 12 and data[1] & 0x7F == 0:
            self.record.audio += data[12 + 4 * (data[0] & 0x0F):]


def ulaw(sample: int) -> int:
    """G.711 mu-law of one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), 32635) + 0x84
    exponent = max(0, sample.bit_length() - 8)
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def unulaw(byte: int) -> int:
    byte = ~byte & 0xFF
    t = (((byte & 0x0F) << 3) + 0x84) << ((byte & 0x70) >> 4)
    return (0x84 - t) if byte & 0x80 else (t - 0x84)


def tone_frames(hz: float, amplitude: int = 8000) -> list[bytes]:
    """One second of a sine at `hz` as fifty 20 ms PCMU payloads (8 kHz)."""
    import math

    data = bytes(ulaw(int(amplitude * math.sin(2 * math.pi * hz * i / 8000))) for i in range(8000))
    return [data[i:i + 160] for i in range(0, 8000, 160)]


def tone_energy(payload: bytes | bytearray, hz: float) -> float:
    """Goertzel power of `hz` in PCMU audio, per sample (about amplitude**2 / 4 for a pure tone)."""
    import math

    samples = [unulaw(b) for b in payload]
    if not samples:
        return 0.0
    k = 2 * math.cos(2 * math.pi * hz / 8000)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - k * s1 * s2) / len(samples) ** 2


@dataclass
class SoftPhone:
    """One registered agent phone. `await start()`, `await register()`, then calls come in."""

    user: str
    password: str
    server: tuple[str, int] = ("127.0.0.1", 5060)
    answer_after_s: float | None = 1.0
    talk_s: float | None = 3.0
    host: str = "127.0.0.1"
    calls: list[CallRecord] = field(default_factory=list)
    tone_hz: float | None = None  # once answered, the phone "speaks": a sine at this frequency, sent as RTP

    def __post_init__(self) -> None:
        self._transport: asyncio.DatagramTransport | None = None
        self._port = 0
        self._pending: dict[str, asyncio.Future[SipMessage]] = {}
        self._dialogs: dict[str, _Dialog] = {}
        self._changed = asyncio.Event()
        self._reg_call_id = secrets.token_hex(8)
        self._reg_cseq = 0
        self._from_tag = secrets.token_hex(4)

    # --- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self._on_datagram),
                                                           local_addr=(self.host, 0))
        self._transport = transport
        self._port = transport.get_extra_info("sockname")[1]

    async def close(self) -> None:
        """Hang up what is still up, unregister, and release the sockets."""
        for dialog in list(self._dialogs.values()):
            if dialog.record.state == "answered":
                await self.hangup(dialog.record.call_id)
            for task in (dialog.task, dialog.speaker):
                if task is not None:
                    task.cancel()
            if dialog.rtp is not None:
                dialog.rtp.close()
        if self._transport is not None:
            try:
                await self.register(expires=0)
            except (SipError, TimeoutError):
                pass
            self._transport.close()
            self._transport = None

    @property
    def contact(self) -> str:
        return f"sip:{self.user}@{self.host}:{self._port}"

    # --- registration --------------------------------------------------------------
    async def register(self, expires: int = 300, timeout: float = 5.0) -> SipMessage:
        """REGISTER, answering the digest challenge; returns the final 200 OK."""
        uri = f"sip:{self.server[0]}:{self.server[1]}"
        auth: str | None = None
        for _ in range(2):
            self._reg_cseq += 1
            branch = "z9hG4bK" + secrets.token_hex(8)
            headers = [
                ("Via", f"SIP/2.0/UDP {self.host}:{self._port};rport;branch={branch}"),
                ("Max-Forwards", "70"),
                ("From", f"<sip:{self.user}@{self.server[0]}>;tag={self._from_tag}"),
                ("To", f"<sip:{self.user}@{self.server[0]}>"),
                ("Call-ID", self._reg_call_id),
                ("CSeq", f"{self._reg_cseq} REGISTER"),
                ("Contact", f"<{self.contact}>"),
                ("Expires", str(expires)),
                ("User-Agent", "ctiserver-test-softphone"),
            ]
            if auth:
                headers.append(("Authorization", auth))
            resp = await self._request(branch, render(f"REGISTER {uri} SIP/2.0", headers), timeout)
            if resp.status == 200:
                return resp
            if resp.status == 401 and auth is None:
                challenge = pick_md5_challenge(resp.all("www-authenticate"))
                auth = digest_authorization(challenge, "REGISTER", uri, self.user, self.password,
                                            secrets.token_hex(8))
                continue
            raise SipError(f"REGISTER {self.user}: {resp.start}")
        raise SipError(f"REGISTER {self.user}: credentials refused")

    async def _request(self, branch: str, data: bytes, timeout: float) -> SipMessage:
        fut: asyncio.Future[SipMessage] = asyncio.get_running_loop().create_future()
        self._pending[branch] = fut
        try:
            self._send(data, self.server)
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(branch, None)

    # --- calls -------------------------------------------------------------------
    async def wait_for_call(self, state: str, timeout: float = 15.0, count: int = 1) -> CallRecord:
        """The `count`-th call that reached `state` (ringing/answered/cancelled/ended)."""
        reached = {"ringing": lambda c: True, "answered": lambda c: c.answered_at is not None,
                   "cancelled": lambda c: c.state == "cancelled", "ended": lambda c: c.state == "ended"}[state]
        deadline = time.monotonic() + timeout
        while True:
            done = [c for c in self.calls if reached(c)]
            if len(done) >= count:
                return done[count - 1]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.user}: no call reached {state!r}; calls: {self.calls}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
            except TimeoutError:
                pass

    async def hangup(self, call_id: str) -> None:
        """Send BYE for an answered call (we are the UAS of Asterisk's INVITE)."""
        dialog = self._dialogs[call_id]
        if dialog.record.state != "answered":
            return
        inv = dialog.invite
        dialog.cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(8)
        to_header = inv.header("to")
        headers = [
            ("Via", f"SIP/2.0/UDP {self.host}:{self._port};rport;branch={branch}"),
            ("Max-Forwards", "70"),
            ("From", f"{to_header};tag={dialog.local_tag}"),
            ("To", inv.header("from")),
            ("Call-ID", call_id),
            ("CSeq", f"{dialog.cseq} BYE"),
        ]
        self._end(dialog, "ended", "local")
        try:
            await self._request(branch, render(f"BYE {dialog.remote_target} SIP/2.0", headers), 5.0)
        except TimeoutError:
            pass

    def _end(self, dialog: _Dialog, state: str, by: str) -> None:
        rec = dialog.record
        if rec.state in ("ended", "cancelled"):
            return
        rec.state, rec.ended_by, rec.ended_at = state, by, time.monotonic()
        if dialog.rtp is not None:
            dialog.rtp.close()
            dialog.rtp = None
        self._changed.set()

    # --- datagram dispatch ----------------------------------------------------------
    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._transport is not None:
            self._transport.sendto(data, addr)

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip():
            return  # keep-alive
        msg = parse_message(data)
        if msg.is_response:
            branch = re.search(r"branch=([^;,\s]+)", msg.header("via"))
            fut = self._pending.get(branch.group(1)) if branch else None
            if fut is not None and not fut.done() and msg.status >= 200:
                fut.set_result(msg)
            return
        handler = {"INVITE": self._on_invite, "ACK": self._on_ack, "CANCEL": self._on_cancel,
                   "BYE": self._on_bye}.get(msg.method)
        if handler is not None:
            handler(msg, addr)
        else:
            self._respond(msg, addr, 200 if msg.method in ("OPTIONS", "NOTIFY") else 501,
                          "OK" if msg.method in ("OPTIONS", "NOTIFY") else "Not Implemented")

    def _respond(self, req: SipMessage, addr: tuple[str, int], code: int, reason: str, to_tag: str = "",
                 extra: list[tuple[str, str]] | None = None, body: str = "") -> bytes:
        to = req.header("to")
        if to_tag and ";tag=" not in to:
            to += f";tag={to_tag}"
        headers = [("Via", v) for v in req.all("via")]
        headers += [("From", req.header("from")), ("To", to), ("Call-ID", req.header("call-id")),
                    ("CSeq", req.header("cseq")), *(extra or [])]
        data = render(f"SIP/2.0 {code} {reason}", headers, body)
        self._send(data, addr)
        return data

    def _on_invite(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        call_id = msg.header("call-id")
        dialog = self._dialogs.get(call_id)
        if dialog is not None:  # a retransmission, or a re-INVITE we do not support
            if ";tag=" in msg.header("to"):
                self._respond(msg, addr, 488, "Not Acceptable Here")
            elif dialog.last_response:
                self._send(dialog.last_response, addr)
            return
        rec = CallRecord(call_id=call_id, caller=msg.header("from"), invited_at=time.monotonic())
        dialog = _Dialog(rec, msg, secrets.token_hex(4), uri_of(msg.header("contact") or msg.header("from")))
        self._dialogs[call_id] = dialog
        self.calls.append(rec)
        self._respond(msg, addr, 100, "Trying")
        dialog.last_response = self._respond(msg, addr, 180, "Ringing", dialog.local_tag,
                                             [("Contact", f"<{self.contact}>")])
        self._changed.set()
        dialog.task = asyncio.get_running_loop().create_task(self._run_call(dialog, addr))

    async def _run_call(self, dialog: _Dialog, addr: tuple[str, int]) -> None:
        if self.answer_after_s is None:
            return  # ring until Asterisk cancels
        await asyncio.sleep(self.answer_after_s)
        if dialog.record.state != "ringing":
            return
        loop = asyncio.get_running_loop()
        rtp, _ = await loop.create_datagram_endpoint(lambda: _Rtp(dialog.record), local_addr=(self.host, 0))
        dialog.rtp = rtp
        sdp = self._sdp(dialog, "sendrecv")
        dialog.last_response = self._respond(
            dialog.invite, addr, 200, "OK", dialog.local_tag,
            [("Contact", f"<{self.contact}>"), ("Content-Type", "application/sdp")], sdp)
        dialog.record.state, dialog.record.answered_at = "answered", time.monotonic()
        self._changed.set()
        if self.tone_hz is not None:
            self._speak(dialog, self.tone_hz)
        if self.talk_s is not None:
            await asyncio.sleep(self.talk_s)
            await self.hangup(dialog.record.call_id)

    def _speak(self, dialog: _Dialog, hz: float) -> None:
        """Send the tone to where the INVITE's SDP says, paced at 20 ms a packet, until the call ends."""
        body = dialog.invite.body
        host = re.search(r"(?m)^c=IN IP4 (\S+)", body)
        port = re.search(r"(?m)^m=audio (\d+)", body)
        if host is None or port is None or dialog.rtp is None:
            return
        target, rtp, frames = (host.group(1), int(port.group(1))), dialog.rtp, tone_frames(hz)
        ssrc = secrets.randbits(32)

        async def run() -> None:
            loop = asyncio.get_running_loop()
            start, n = loop.time(), 0
            while dialog.record.state == "answered":
                header = bytes([0x80, 0x80 if n == 0 else 0x00]) + (n & 0xFFFF).to_bytes(2, "big") + \
                    (n * 160 & 0xFFFFFFFF).to_bytes(4, "big") + ssrc.to_bytes(4, "big")
                rtp.sendto(header + frames[n % len(frames)], target)
                n += 1
                await asyncio.sleep(max(0.0, start + n * 0.02 - loop.time()))

        dialog.speaker = asyncio.get_running_loop().create_task(run())

    def _sdp(self, dialog: _Dialog, direction: str) -> str:
        assert dialog.rtp is not None
        rtp_port = dialog.rtp.get_extra_info("sockname")[1]
        return (f"v=0\r\no=- {rtp_port} {dialog.sdp_version} IN IP4 {self.host}\r\ns=ctiserver-test\r\n"
                f"c=IN IP4 {self.host}\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\n"
                "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
                f"a={direction}\r\n")

    async def hold(self, call_id: str, on: bool = True, timeout: float = 5.0) -> None:
        """Put an answered call on hold (re-INVITE, a=sendonly) or take it back (a=sendrecv)."""
        dialog = self._dialogs[call_id]
        if dialog.record.state != "answered":
            raise SipError(f"call {call_id} is {dialog.record.state}: nothing to hold")
        inv = dialog.invite
        dialog.cseq += 1
        dialog.sdp_version += 1
        branch = "z9hG4bK" + secrets.token_hex(8)
        common = [("Max-Forwards", "70"), ("From", f"{inv.header('to')};tag={dialog.local_tag}"),
                  ("To", inv.header("from")), ("Call-ID", call_id)]
        headers = [("Via", f"SIP/2.0/UDP {self.host}:{self._port};rport;branch={branch}"), *common,
                   ("CSeq", f"{dialog.cseq} INVITE"), ("Contact", f"<{self.contact}>"),
                   ("Content-Type", "application/sdp")]
        body = self._sdp(dialog, "sendonly" if on else "sendrecv")
        resp = await self._request(branch, render(f"INVITE {dialog.remote_target} SIP/2.0", headers, body), timeout)
        if resp.status >= 300:
            raise SipError(f"re-INVITE ({'hold' if on else 'unhold'}) refused: {resp.start}")
        ack_branch = "z9hG4bK" + secrets.token_hex(8)  # the ACK of a 2xx is a transaction of its own
        ack = [("Via", f"SIP/2.0/UDP {self.host}:{self._port};rport;branch={ack_branch}"), *common,
               ("CSeq", f"{dialog.cseq} ACK")]
        self._send(render(f"ACK {dialog.remote_target} SIP/2.0", ack), self.server)

    def _on_ack(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        dialog = self._dialogs.get(msg.header("call-id"))
        if dialog is not None:
            dialog.last_response = b""  # the INVITE transaction is over: nothing to repeat

    def _on_cancel(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        dialog = self._dialogs.get(msg.header("call-id"))
        self._respond(msg, addr, 200 if dialog else 481, "OK" if dialog else "Call Does Not Exist")
        if dialog is not None and dialog.record.state == "ringing":
            dialog.last_response = self._respond(dialog.invite, addr, 487, "Request Terminated", dialog.local_tag)
            self._end(dialog, "cancelled", "remote")

    def _on_bye(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        dialog = self._dialogs.get(msg.header("call-id"))
        self._respond(msg, addr, 200 if dialog else 481, "OK" if dialog else "Call Does Not Exist")
        if dialog is not None:
            if dialog.task is not None:
                dialog.task.cancel()
            self._end(dialog, "ended", "remote")


async def audio_after(rec: CallRecord, nbytes: int, timeout: float = 20.0) -> bytes:
    """The next `nbytes` of audio the phone receives from now (waits on the RTP itself, not on a clock)."""
    since = len(rec.audio)
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while len(rec.audio) < since + nbytes:
        if loop.time() > end or rec.state != "answered":
            raise AssertionError(f"only {len(rec.audio) - since} of {nbytes} bytes of audio came "
                                 f"(call {rec.state})")
        await asyncio.sleep(0.05)
    return bytes(rec.audio[since:since + nbytes])


@contextlib.asynccontextmanager
async def agent_phone(agent_id: str, server: tuple[str, int], *, answer_after_s: float | None = 1.0,
                      talk_s: float | None = 3.0, tone_hz: float | None = None) -> AsyncIterator[SoftPhone]:
    """The sandbox's PJSIP endpoint `agent<id>` (password `pw<id>`), registered for the block; with
    `tone_hz` it sends that tone while a call is answered (and keeps what it hears in `CallRecord.audio`)."""
    phone = SoftPhone(f"agent{agent_id}", f"pw{agent_id}", server, answer_after_s=answer_after_s, talk_s=talk_s,
                      tone_hz=tone_hz)
    await phone.start()
    try:
        await phone.register()
        yield phone
    finally:
        await phone.close()
