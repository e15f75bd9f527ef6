"""API errors: one exception with a stable id and an HTTP status, rendered as JSON.

    ApiError(status, error_id, message)
      ├── 400 bad-json / bad-query        request not parseable
      ├── 401 unauthenticated             no or expired session
      ├── 403 forbidden                   role or ownership check failed
      ├── 404 not-found / unknown-*       no such thing
      ├── 409 illegal-transition, ...     the thing exists but refuses
      ├── 413 body-too-large
      ├── 415 unsupported-media-type
      ├── 422 invalid                     validated, and wrong (with field details)
      └── 429 rate-limited                too many failed logins
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(Exception):
    def __init__(self, status: int, error_id: str, message: str, *, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message
        self.details = details
        self.headers = headers or {}

    def response(self) -> web.Response:
        body: dict[str, Any] = {"id": self.error_id, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return web.json_response({"error": body}, status=self.status, headers=self.headers)
