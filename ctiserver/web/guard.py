"""The one cross-site (CSRF) check for every state-changing request, and the server's HTTP middlewares.

A browser holding a session cookie can be made to send requests by any page it visits. The
session cookie is SameSite=Strict, and on top of that every request that may change state
(any method but GET/HEAD/OPTIONS, on every route of the app, present and future) must:

* come from this site: an `Origin` header, when present, names this host (`null`, another host
  or port are refused), and `Sec-Fetch-Site`, when present, is `same-origin` or `none`;
* carry JSON if it carries a body: a body that is not `application/json` is refused with 415,
  and so are the three types a cross-site form or no-preflight `fetch` can send (`text/plain`,
  `application/x-www-form-urlencoded`, `multipart/form-data`) even with an empty body. JSON
  cannot be sent cross-site without a CORS preflight, which this server never grants. POSTs
  that carry nothing (log out, hang up, start a campaign) need no Content-Type, but still pass
  the origin check.

Non-browser clients (scripts, curl) send no Origin and are unaffected. The WebSocket (a GET)
applies `same_origin` itself before upgrading.
"""

from __future__ import annotations

from aiohttp import web

from .errors import ApiError, Handler, json_errors

# Every page and its files (desktop, wallboard, reports): no inline script or style, nothing off-site,
# never framed (clickjacking), no MIME sniffing, no referrer.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_SITE_FETCH = frozenset({"same-origin", "none"})
_FORM_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})


def same_origin(request: web.Request) -> bool:
    """False when the browser says the request comes from another site; True otherwise."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in _SAME_SITE_FETCH:
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser, or a same-origin GET
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme not in ("http", "https"):
        return False  # "null" (sandboxed frame, file:, data:) and anything odd
    return rest.rstrip("/").lower() == request.host.lower()


@web.middleware
async def same_origin_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a state-changing request from another site (403) or with a non-JSON body (415)."""
    if request.method not in SAFE_METHODS and request.match_info.http_exception is None:  # a route of ours
        if not same_origin(request):
            raise ApiError(403, "bad-origin", "request from another site refused")
        ctype = request.content_type if "Content-Type" in request.headers else None
        if ctype != "application/json" and (request.body_exists or ctype in _FORM_TYPES):
            raise ApiError(415, "unsupported-media-type", "send Content-Type: application/json")
    return await handler(request)


MIDDLEWARES = (json_errors, same_origin_json)


def install_middlewares(app: web.Application) -> None:
    """Put the server's HTTP middlewares first on `app` (once; before it starts)."""
    for position, mw in enumerate(MIDDLEWARES):
        if mw not in app.middlewares:
            app.middlewares.insert(position, mw)


def new_app(**kwargs: object) -> web.Application:
    """An aiohttp app with the server's middlewares (errors in one shape, the cross-site check)."""
    app = web.Application(**kwargs)  # type: ignore[arg-type]
    install_middlewares(app)
    return app
