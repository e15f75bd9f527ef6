"""One file of a feature's browser page (its HTML, script or style), served from memory.

Every page's files go out the same way: the page headers (CSP without inline code, no framing, no
sniffing), UTF-8, and an entry in the OpenAPI document under `pages` (no login: the page signs in itself).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from .guard import PAGE_HEADERS
from .openapi import Operation, Reply, documented


def page_file(page: str, name: str, text: str,
              content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler serving `text` as `name` of `page` ("the reports page", "the QC page", ...)."""
    @documented(Operation(summary=f"{page[:1].upper()}{page[1:]}: {name}", roles=None, tags=("pages",),
                          replies={200: Reply(name, content_type=content_type, schema={"type": "string"})},
                          operation_id="get_" + name.replace(".", "_")))
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(text=text, content_type=content_type, charset="utf-8", headers=PAGE_HEADERS)
    return handler
