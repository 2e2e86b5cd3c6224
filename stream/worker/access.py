"""Who may read the worker's HTTP API (SECURITY.md).

With `api_token` set, every path but `api_open_paths` (default /health and
/metrics) needs it: `Authorization: Bearer <token>` for programs, or, for
the dashboard in a browser, the sign-in cookie that POST /dashboard/login
sets once the token was typed into its form (the token never travels in a
URL, so no history or proxy log holds it). Faust's own pages (its router
and table views) sit behind the same check: one aiohttp middleware sees
every request. Without a token the API is open, and the worker refuses to
start unless its web server binds loopback only (`check_binding`).
"""
from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
from typing import Optional

from aiohttp import web
from pydantic import SecretStr

COOKIE = "memberstream_session"
LOGIN_PATH = "/dashboard/login"
ASSETS = "/dashboard/assets/"  # the page's script and style: open, they hold no data


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_binding(web_host: str, token: Optional[SecretStr]) -> Optional[str]:
    """Why the worker must not start (None: it may)."""
    if token is None and not is_loopback(web_host):
        return (f"the web server would bind {web_host} without a token: set MEMBERSTREAM_API_TOKEN "
                "(or MEMBERSTREAM_API_TOKEN_FILE), or bind 127.0.0.1")
    return None


class Access:
    def __init__(self, token: Optional[SecretStr], open_paths=("/health", "/metrics")):
        self._token = None if token is None else token.get_secret_value().encode()
        # The cookie holds a value derived from the token, not the token itself.
        self._session = None if self._token is None else hmac.new(
            self._token, b"memberstream dashboard session", hashlib.sha256).hexdigest().encode()
        self.open_paths = frozenset(open_paths)

    def __repr__(self) -> str:
        return f"Access(token={'set' if self._token else 'none'}, open={sorted(self.open_paths)})"

    def allowed(self, request: web.Request) -> bool:
        if self._token is None or request.path in self.open_paths or request.path.startswith(ASSETS):
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
            return True
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(), self._session)

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        if request.path == LOGIN_PATH and request.method == "POST":
            return await self._login(request)
        if self.allowed(request):
            return await handler(request)
        if request.path.startswith("/dashboard") and "text/html" in request.headers.get("Accept", ""):
            return _login_page(status=401)
        return web.json_response({"error": "unauthorized: send Authorization: Bearer <MEMBERSTREAM_API_TOKEN>"},
                                 status=401, headers={"WWW-Authenticate": 'Bearer realm="memberstream"'})

    async def _login(self, request: web.Request) -> web.Response:
        if self._token is None:
            return web.Response(status=303, headers={"Location": "/dashboard"})
        form = await request.post()
        given = str(form.get("token", "")).encode()
        if not hmac.compare_digest(given, self._token):
            return _login_page(status=401, wrong=True)
        response = web.Response(status=303, headers={"Location": "/dashboard"})
        response.set_cookie(COOKIE, self._session.decode(), httponly=True, samesite="Strict", path="/",
                            # Behind a TLS proxy the request arrives as http; the flag only restricts.
                            secure=request.secure or request.headers.get("X-Forwarded-Proto") == "https")
        return response


def _login_page(status: int, wrong: bool = False) -> web.Response:
    note = "<p class=\"error\">That token is not right.</p>" if wrong else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>memberstream: sign in</title>
<link rel="stylesheet" href="/dashboard/assets/dashboard.css"></head>
<body><main class="login"><h1>memberstream</h1>
<form method="post" action="{html.escape(LOGIN_PATH)}">
<label>API token <input id="token" name="token" type="password" autocomplete="current-password" autofocus></label>
<button id="sign-in">Sign in</button></form>{note}</main></body></html>"""
    return web.Response(text=body, content_type="text/html", status=status)
