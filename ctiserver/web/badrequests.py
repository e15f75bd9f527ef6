"""Malformed HTTP requests: counted and logged as one line per burst, never a traceback each.

aiohttp parses a request before any middleware runs, so a request it cannot parse (a bad request line, a
header too long, broken chunking, a port scanner's junk) never reaches our error shape: aiohttp answers
400 itself and logs "Error handling request" with a full traceback, once per connection. A scanner on the
desktop port would fill the log. The server's HTTP logger runs through `BadRequestLog`, which turns those
records into a `LogBurst` (the first with the peer and the parser's complaint, then a count) and lets every
other record through unchanged.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

from ..lograte import LogBurst


class BadRequestLog(logging.Filter):
    """Swallows aiohttp's per-request parse-error tracebacks into one aggregated warning."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.burst = LogBurst(logger, "malformed HTTP requests answered 400")

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        self.burst.add(detail=f"from {peer}: {type(exc).__name__} {str(exc)[:80]!r}")
        return False


def http_server_logger(name: str = "ctiserver.http") -> logging.Logger:
    """The logger the HTTP server writes to, with the filter installed once."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, BadRequestLog) for f in logger.filters):
        logger.addFilter(BadRequestLog(logger))
    return logger
