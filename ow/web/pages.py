"""The dashboard's pages: one HTML shell per page (nav, org switch, the page's ids), filled
in the browser by `static/app.js` from the JSON API; the login form and logout.

The session cookie holds the viewer's tokens (one per org), HttpOnly and SameSite=Strict.

Imports: stdlib, starlette and `ow.web`.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ow.web.auth import COOKIE, cookie_tokens, cookie_value
from ow.web.context import web_of
from ow.web.errors import AuthError

__all__ = ["ROUTES"]

STATIC = Path(__file__).parent / "static"
_NAV = (("jobs", "Jobs"), ("workers", "Workers"), ("events", "Events"),
        ("anomalies", "Audit"), ("costs", "Costs"))


def _template(name: str) -> Template:
    return Template((STATIC / name).read_text())


def _local(path: str | None) -> str:
    """A redirect target on this site only (never `//host` or a scheme)."""
    return path if path and path.startswith("/") and not path.startswith("//") else "/"


def _shell(page: str, org: str, orgs: dict[str, str], open_: bool, ids: dict[str, str]) -> str:
    nav = "".join(
        f'<a href="/o/{quote(org)}/{key}"{" class=here" if key == page else ""}>{label}</a>'
        for key, label in _NAV
    )
    options = "".join(
        f'<option value="{html.escape(o)}"{" selected" if o == org else ""}>'
        f"{html.escape(o)} ({html.escape(s)})</option>" for o, s in orgs.items()
    )
    logout = "" if open_ else (
        '<form method="post" action="/logout"><button>log out</button></form>')
    boot = json.dumps({"page": page, "org": org, **ids}).replace("<", "\\u003c")
    return _template("page.html").substitute(
        title=html.escape(f"{page} · {org} · ow"), nav=nav, options=options, logout=logout,
        boot=boot,
    )


def _page(page: str, id_name: str | None = None) -> Any:
    async def handler(request: Request) -> Response:
        web = web_of(request)
        org = request.path_params["org"]
        try:
            viewer = await web.viewer(request)
        except AuthError as exc:
            if exc.status == 401:
                return RedirectResponse(f"/login?next={quote(request.url.path)}", 303)
            raise
        viewer.scope(org)  # 403 for an org the viewer has no token of
        ids = {id_name: request.path_params[id_name]} if id_name else {}
        return HTMLResponse(_shell(page, org, viewer.orgs, viewer.open, ids))

    handler.__name__ = f"{page}_page"
    return handler


async def home(request: Request) -> Response:
    try:
        viewer = await web_of(request).viewer(request)
    except AuthError as exc:
        if exc.status == 401:
            return RedirectResponse("/login", 303)
        raise
    return RedirectResponse(f"/o/{quote(next(iter(viewer.orgs)))}/jobs", 303)


def _login_form(error: str = "", next_: str = "/", status: int = 200) -> HTMLResponse:
    body = _template("login.html").substitute(
        error=f'<p class="error">{html.escape(error)}</p>' if error else "",
        next=html.escape(_local(next_)),
    )
    return HTMLResponse(body, status_code=status)


async def login(request: Request) -> Response:
    if request.method == "GET":
        return _login_form(next_=request.query_params.get("next", "/"))
    form = parse_qs((await request.body()).decode(errors="replace"))
    token = (form.get("token") or [""])[0].strip()
    next_ = _local((form.get("next") or ["/"])[0])
    web = web_of(request)
    try:
        record = await web.auth.check(token)
    except AuthError as exc:
        return _login_form(str(exc), next_, status=401)
    tokens: dict[str, str] = {}
    for old in cookie_tokens(request.cookies.get(COOKIE)):
        try:
            tokens[(await web.auth.check(old)).org] = old
        except AuthError:
            continue  # a token revoked since: dropped from the session
    tokens[record.org] = token
    target = next_ if next_ != "/" else f"/o/{quote(record.org)}/jobs"
    response = RedirectResponse(target, 303)
    response.set_cookie(COOKIE, cookie_value(tokens), httponly=True, samesite="strict", path="/")
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", 303)
    response.delete_cookie(COOKIE, path="/")
    return response


def ROUTES() -> list[Any]:  # noqa: N802 - a table, built when the app is
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    o = "/o/{org}"
    return [
        Route("/", home),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route(f"{o}/jobs", _page("jobs")),
        Route(f"{o}/jobs/{{job_id}}", _page("job", "job_id")),
        Route(f"{o}/runs/{{run_id}}", _page("run", "run_id")),
        Route(f"{o}/workers", _page("workers")),
        Route(f"{o}/events", _page("events")),
        Route(f"{o}/anomalies", _page("anomalies")),
        Route(f"{o}/costs", _page("costs")),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
