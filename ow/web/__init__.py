"""ow.web: the web dashboard and its JSON API, hosted by the read service (`ow serve`).

    create_app(*, projector_for, bus_for, home) -> ASGI app
    serve_app(app, host="127.0.0.1", port=0, *, task_status) -> runs uvicorn in this loop

Modules: `app` (routes, errors, OpenAPI, serving), `api` (JSON handlers), `pages` (HTML
shells, login), `sse` (live streams), `queries` (every projection read), `present` (what
is shown, decided in Python), `auth` (tokens and scopes), `context` (what handlers share).
Assets (`static/`, uPlot under `static/vendor/`) ship inside the package.

Imports: `ow.core`, `ow.projections`, `ow.sdk`, starlette and uvicorn; only `ow.cli` imports
this package (`import ow` never loads it).
"""

from ow.web.app import create_app, serve_app

__all__ = ["create_app", "serve_app"]
