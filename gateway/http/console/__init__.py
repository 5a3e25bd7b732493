"""``GET /console``: the web console on the Config API (issue 15; docs/console.md).

One static page and its script, served from the package with the libraries it uses (Preact, htm, uPlot in
``static/vendor/``, copied from npm by ``scripts/vendor-console.sh``): the console works offline and needs
no build step. Everything it shows comes from the Config API's own endpoints (same origin), read with the
user's config token when they gave one (kept in the tab's ``sessionStorage``), which writes and the live
tail need when the gateway has one.

Every response carries a Content-Security-Policy that allows scripts, styles and connections from this
origin only and no inline script or style element, so even text a client or plugin chose (event types,
messages) that somehow reached the page as markup could not run; the page renders such text as text.
Only the files listed in :data:`FILES` are served (no path from the URL reaches the file system).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from quart import Blueprint, Response

from gateway.http.errors import ApiError

__all__ = ["CSP", "FILES", "console_blueprint"]

STATIC = Path(__file__).resolve().parent / "static"

#: Served files (relative to ``static/``) and their types.
FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.mjs": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "vendor/preact.mjs": "text/javascript; charset=utf-8",
    "vendor/preact-hooks.mjs": "text/javascript; charset=utf-8",
    "vendor/htm.mjs": "text/javascript; charset=utf-8",
    "vendor/uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "vendor/uPlot.min.css": "text/css; charset=utf-8",
    "vendor/VERSIONS": "text/plain; charset=utf-8",
    "vendor/LICENSE.preact": "text/plain; charset=utf-8",
    "vendor/LICENSE.htm": "text/plain; charset=utf-8",
    "vendor/LICENSE.uplot": "text/plain; charset=utf-8",
}

#: No inline script, no eval, nothing from another origin; uPlot and Preact set element styles through the
#: CSSOM, which style-src does not restrict.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@cache
def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def _file(name: str) -> Response:
    if name not in FILES:
        raise ApiError(404, "not found")
    response = Response(_read(name), status=200, content_type=FILES[name])
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


def console_blueprint() -> Blueprint:
    blueprint = Blueprint("console", __name__)

    @blueprint.get("/console")
    async def page() -> Response:
        return _file("index.html")

    @blueprint.get("/console/static/<path:name>")
    async def static(name: str) -> Response:
        return _file(name)

    return blueprint
