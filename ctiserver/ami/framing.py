"""Sans-IO AMI framing: bytes in, `AmiMessage`s out.

panoramisk decodes every TCP chunk on its own with `errors='ignore'`, so a UTF-8
character split across two reads (a caller name in Chinese) silently vanishes.
We keep bytes until a blank line ends the frame. A clean frame (every line `Key: value`,
valid UTF-8, an Event or Response header: nearly all of them) is checked with one
regular expression and kept as bytes; each header is decoded when a handler reads it
(`AmiMessage._from_frame`), so the dozen headers of an event nobody reads cost nothing.
Any other frame takes the slow path below, which decodes it whole and says what is wrong.

Robustness rules, each covered by tests/ami/test_framing.py:
- the `Asterisk Call Manager/x.y.z` banner (one CRLF line, no blank line) is taken
  off the front and remembered in `version`;
- frames end at a blank line: `\\r\\n\\r\\n`, or a bare `\\n\\n` from odd peers;
- a frame that is not valid UTF-8 is decoded with U+FFFD replacements and logged:
  losing a Hangup because of one bad byte in a caller name is worse;
- a line without `Key: value` is skipped, the rest of the frame kept; a frame with
  no usable header is dropped, later frames unaffected;
- a frame larger than `max_frame` bytes is dropped and the stream resynchronises at
  the next blank line (memory stays bounded on a runaway peer).

Junk is counted, not narrated: bad lines are counted per frame, and each kind of
problem is logged as one line for the first of a burst and one summary with the
count per interval (`FrameProblems`, `ctiserver.lograte.LogBurst`). A peer sending megabytes of junk once
produced a WARNING per line (900k lines) and froze the loop for seconds. The work
per `feed` is linear in the bytes fed and cheap for junk (a frame without a colon
is counted without being decoded); the reader feeds one socket read at a time and
yields to the event loop between reads (client.py), so no burst stalls the loop.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from ..lograte import LogBurst
from .message import AmiMessage

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/"
MAX_FRAME = 1024 * 1024
LOG_INTERVAL_S = 10.0
_END = re.compile(rb"\n\r?\n")  # a leading literal lets re scan fast; a CR before it is taken off after
_LEGACY_BODY_END = "--END COMMAND--"
_LINE = re.compile(r"^([^:\s]+): ?([^\r\n]*)\r?$", re.M)  # one `Key: value` line (value may be empty)
_DEFAULT_KINDS = ("event", "response")
# the slow path's line rules, applied by re to a whole frame at once (junk frames: no per-line Python)
# a good line: its key (up to the first colon) has no space in it and no whitespace around it; one space after
# the colon and the line's trailing CRs are not the value's
# (each led by the line's newline: re then skips from newline to newline, 5x faster than a ^ tried everywhere)
_GOOD_LINE = re.compile(r"\n([^\s:](?:[^ :\n]*[^\s:])?):(?: )?([^\n]*?)\r*(?=\n|\Z)")
_NONBLANK_LINE = re.compile(r"\n[^\S\n]*\S")
_LEADING_BLANK_LINES = re.compile(r"(?:[^\S\n]*\n)*")
_NL = b"\n"
# a frame (lower-cased, b"\\n" in front) whose every line is `Key: value`: the key without blanks or colon
_CLEAN = re.compile(rb"(?:\n[^:\s]+:[^\n]*)*\n")


class FrameProblems:
    """The framer's counters and aggregated log lines (one set per AMI connection's framer)."""

    def __init__(self, interval_s: float = LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.bad_lines = LogBurst(log, "AMI lines without 'Key: value' skipped", interval_s=interval_s, clock=clock)
        self.dropped = LogBurst(log, "AMI frames without a usable header dropped", interval_s=interval_s,
                                clock=clock)
        self.oversize = LogBurst(log, "AMI frames over the size limit dropped (the stream resyncs at the next "
                                 "blank line)", interval_s=interval_s, clock=clock)
        self.bad_utf8 = LogBurst(log, "AMI frames not valid UTF-8 (bad bytes replaced)", interval_s=interval_s,
                                 clock=clock)

    def flush(self) -> None:
        for burst in (self.bad_lines, self.dropped, self.oversize, self.bad_utf8):
            burst.flush()


_SHARED = FrameProblems()  # for parse_frame() called without a framer


class AmiFramer:
    """Feed it what the socket gives; it returns every frame completed so far, in order."""

    def __init__(self, max_frame: int = MAX_FRAME, kinds: tuple[str, ...] = ("event", "response"), *,
                 problems: FrameProblems | None = None) -> None:
        self.max_frame = max_frame
        self.kinds = kinds  # a frame needs one of these headers (a fake server asks for "Action")
        self._needles = tuple(b"\n" + k.lower().encode() + b":" for k in kinds)
        self._prefixes = self._needles  # the usual place: the first line
        self.problems = problems or FrameProblems()
        self.version: str | None = None
        self.frames = 0  # frames returned
        self.dropped = 0  # frames dropped (oversize or no usable header)
        self.bad_lines = 0  # lines without `Key: value` skipped
        self.bad_utf8 = 0  # frames decoded with replacement characters
        self._buf = bytearray()
        self._scan = 0  # where the next search for a frame end starts
        self._at_start = True  # the banner may still come
        self._skipping = False  # inside an oversize frame: discard up to its end
        # what the current feed() found wrong, logged once at its end (see FrameProblems)
        self._first_bad_line: str | None = None
        self._first_dropped: str | None = None
        self._first_bad_utf8: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the end of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget everything buffered (a new connection starts afresh, banner included)."""
        self._buf.clear()
        self._scan = 0
        self._at_start = True
        self._skipping = False
        self.problems.flush()

    def feed(self, data: bytes, received: float | None = None) -> list[AmiMessage]:
        """`received`: when `data` was read (stamped on each message as its fallback time)."""
        self._buf += data
        out: list[AmiMessage] = []
        if self._at_start and not self._take_banner():
            return out
        counts = (self.dropped, self.bad_lines, self.bad_utf8)
        buf = self._buf
        search = _END.search
        pos = 0  # start of the next frame; everything before it is done with (deleted once, at the end)
        at = self._scan
        while (m := search(buf, at)) is not None:
            start, at = m.start(), m.end()
            end = start + 1  # the frame's last line keeps its line end (the held form's lookups need one)
            if start > pos and buf[start - 1] == 0x0D:
                start -= 1
            if self._skipping:
                self._skipping = False  # the end of an oversize frame: what follows is a fresh frame
            elif start - pos > self.max_frame:
                self._drop_oversize(start - pos)
            elif start > pos:
                msg = self._frame(_NL + buf[pos:end], received)
                if msg is not None:
                    self.frames += 1
                    out.append(msg)
            pos = at
        if pos:
            del buf[:pos]
        self._check_size()
        if (self.dropped, self.bad_lines, self.bad_utf8) != counts:
            self._log_problems(counts)
        return out

    # --- internals ---------------------------------------------------------
    def _frame(self, raw: bytes, received: float | None) -> AmiMessage | None:
        """`raw`: b"\\n" + one frame's lines, each with its line end."""
        if b":" not in raw:  # junk (or stray whitespace): no header possible, not worth decoding
            if not raw.isspace():
                self.dropped += 1
                if self._first_dropped is None:
                    body = raw[1:]
                    self._first_dropped = f"{body[:60]!r} ({body.count(_NL)} lines)"
            return None
        low = raw.lower()
        if (low.startswith(self._prefixes) or self._has_kind(low)) and _CLEAN.fullmatch(low) \
                and not low.startswith(b"\nresponse: follows"):
            if raw.isascii():
                return AmiMessage._from_frame(raw, low, received)
            try:
                raw.decode()
            except UnicodeDecodeError:
                pass  # the slow path below replaces the bad bytes and counts the frame
            else:
                return AmiMessage._from_frame(raw, low, received)
        # the rare frame: bad lines, bad UTF-8, a legacy command body, no Event/Response header
        body = raw[1:].rstrip(b"\r\n")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.bad_utf8 += 1
            if self._first_bad_utf8 is None:
                self._first_bad_utf8 = f"{exc.reason} at byte {exc.start}"
            text = body.decode("utf-8", "replace")
        return parse_frame(text, self, self.kinds, received)

    def _has_kind(self, low: bytes) -> bool:
        for needle in self._needles:
            if needle in low:
                return True
        return False

    def _log_problems(self, before: tuple[int, int, int]) -> None:
        dropped, bad_lines, bad_utf8 = (self.dropped - before[0], self.bad_lines - before[1],
                                        self.bad_utf8 - before[2])
        p = self.problems
        p.bad_lines.add(self._first_bad_line or "", bad_lines)
        p.dropped.add(self._first_dropped or "", dropped)
        p.bad_utf8.add(self._first_bad_utf8 or "", bad_utf8)
        self._first_bad_line = self._first_dropped = self._first_bad_utf8 = None

    def _take_banner(self) -> bool:
        """Strip the banner line if present; False while we cannot tell yet."""
        buf = self._buf
        probe = bytes(buf[: len(BANNER)])
        if not BANNER.startswith(probe):
            self._at_start = False  # no banner: a peer that skips it, or a mid-stream feed
            return True
        if len(buf) < len(BANNER):
            return False
        nl = buf.find(b"\n")
        if nl < 0:
            if len(buf) > 256:
                log.warning("AMI banner line too long; treating the stream as frames")
                self._at_start = False
                return True
            return False
        line = bytes(buf[:nl]).rstrip(b"\r").decode("utf-8", "replace")
        self.version = line[len(BANNER):].strip()
        del buf[: nl + 1]
        self._at_start = False
        return True

    def _check_size(self) -> None:
        # keep 3 bytes: a terminator may straddle this chunk and the next
        self._scan = max(0, len(self._buf) - 3)
        if len(self._buf) > self.max_frame:
            if not self._skipping:
                self._drop_oversize(len(self._buf))
                self._skipping = True
            tail = bytes(self._buf[-3:])
            self._buf.clear()
            self._buf += tail
            self._scan = 0

    def _drop_oversize(self, size: int) -> None:
        self.dropped += 1
        self.problems.oversize.add(f"limit {self.max_frame} bytes, {size} so far")

    def _note_bad_line(self, line: str) -> None:
        self.bad_lines += 1
        if self._first_bad_line is None:
            self._first_bad_line = repr(line[:80])

    def _note_dropped(self, kinds: tuple[str, ...], lines: int) -> None:
        self.dropped += 1
        if self._first_dropped is None:
            self._first_dropped = f"no {'/'.join(kinds)} header ({lines} lines)"


def parse_frame(text: str, stats: AmiFramer | None = None,
                kinds: tuple[str, ...] = _DEFAULT_KINDS, received: float | None = None) -> AmiMessage | None:
    """One frame's text (without the blank line) to a message; None if nothing usable."""
    if text.count(":") <= text.count("\n"):  # a line without a colon: the fast path cannot take it (C counts)
        return _parse_slow(text, stats, kinds, received)
    pairs = _LINE.findall(text)
    if pairs and len(pairs) == text.count("\n") + 1 and not text.startswith("Response: Follows"):
        # fast path, nearly every frame: each line is `Key: value`
        wanted = kinds if kinds == _DEFAULT_KINDS else tuple(k.lower() for k in kinds)
        first = pairs[0][0].lower()
        if first in wanted or any(k.lower() in wanted for k, _ in pairs):
            return AmiMessage._trusted(tuple(pairs), "", received)
    return _parse_slow(text, stats, kinds, received)


def _parse_slow(text: str, stats: AmiFramer | None, kinds: tuple[str, ...],
                received: float | None = None) -> AmiMessage | None:
    """A frame with lines that are not `Key: value`: the good lines are kept, the others counted. By re over
    the whole frame (a frame of 20,000 junk lines costs 2 ms, not 80), except a legacy command body."""
    rest = text[_LEADING_BLANK_LINES.match(text).end():]  # type: ignore[union-attr]  # always matches
    if not rest.strip():
        return None  # stray blank lines between frames
    newline = rest.find("\n")
    if (rest if newline < 0 else rest[:newline]).rstrip("\r").strip().lower() == "response: follows":
        return _parse_legacy(rest, stats, kinds, received)
    led = "\n" + rest
    items = _GOOD_LINE.findall(led)
    bad = len(_NONBLANK_LINE.findall(led)) - len(items)
    if bad:
        first = next(x for x in rest.split("\n") if x.strip() and not _GOOD_LINE.match("\n" + x)).rstrip("\r")
        if stats is not None:
            stats._note_bad_line(first)
            stats.bad_lines += bad - 1
        else:
            _SHARED.bad_lines.add(repr(first[:80]), bad)
    return _keep_if_wanted(items, "", rest.count("\n") + 1, stats, kinds, received)


def _keep_if_wanted(items: list[tuple[str, str]], body: str, lines: int, stats: AmiFramer | None,
                    kinds: tuple[str, ...], received: float | None) -> AmiMessage | None:
    wanted = {k.lower() for k in kinds}
    if not items or not any(k.lower() in wanted for k, _ in items):
        if stats is not None:
            stats._note_dropped(kinds, lines)
        else:
            _SHARED.dropped.add(f"no {'/'.join(kinds)} header ({lines} lines)")
        return None
    return AmiMessage(items, body, received)


def _parse_legacy(text: str, stats: AmiFramer | None, kinds: tuple[str, ...],
                  received: float | None) -> AmiMessage | None:
    """`Response: Follows`: after its headers, the command's output lines, up to --END COMMAND--."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    items: list[tuple[str, str]] = []
    body: list[str] = []
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and key and key == key.strip() and " " not in key and not body:
            items.append((key, value[1:] if value.startswith(" ") else value))
        elif items:
            if line.strip() != _LEGACY_BODY_END:
                body.append(line)
        elif line.strip():
            if stats is not None:
                stats._note_bad_line(line)
            else:
                _SHARED.bad_lines.add(repr(line[:80]))
    return _keep_if_wanted(items, "\n".join(body), len(lines), stats, kinds, received)
