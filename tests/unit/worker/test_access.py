"""Who may read the worker's HTTP API (stream/worker/access.py), on aiohttp's own test
server: open paths, the bearer token, the dashboard's sign-in cookie, and the
refusal to serve off loopback without a token."""
import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from stream.worker.access import COOKIE, Access, check_binding, is_loopback

TOKEN = "a-token-of-24-characters"


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                            ("0.0.0.0", False), ("10.0.0.5", False), ("worker", False)])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback
    assert (check_binding(host, None) is None) is loopback
    assert check_binding(host, SecretStr(TOKEN)) is None


def _requests(access: Access, script):
    async def ok(request):
        return web.json_response({"path": request.path})

    async def go():
        app = web.Application(middlewares=[access.middleware])
        for path in ("/health", "/metrics", "/members/{id}", "/dashboard", "/dashboard/data",
                     "/dashboard/assets/{name}", "/table/"):
            app.router.add_get(path, ok)
        async with TestClient(TestServer(app)) as client:
            return await script(client)
    return asyncio.run(go())


def test_with_a_token_only_the_open_paths_answer_without_it():
    async def script(client):
        codes = {}
        for path in ("/health", "/metrics", "/members/k1.ab", "/dashboard/data", "/table/", "/dashboard/assets/x.js"):
            codes[path] = (await client.get(path)).status
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        codes["bearer"] = (await client.get("/members/k1.ab", headers=bearer)).status
        codes["wrong"] = (await client.get("/members/k1.ab", headers={"Authorization": "Bearer nope"})).status
        page = await client.get("/dashboard", headers={"Accept": "text/html"})
        codes["page"], form = page.status, await page.text()
        bad = await client.post("/dashboard/login", data={"token": "nope"}, allow_redirects=False)
        good = await client.post("/dashboard/login", data={"token": TOKEN}, allow_redirects=False)
        codes["bad login"], codes["good login"] = bad.status, good.status
        cookie = good.cookies[COOKIE].value
        codes["cookie"] = (await client.get("/dashboard/data")).status  # the client keeps the cookie
        return codes, form, cookie

    codes, form, cookie = _requests(Access(SecretStr(TOKEN)), script)
    assert codes == {"/health": 200, "/metrics": 200, "/members/k1.ab": 401, "/dashboard/data": 401,
                     "/table/": 401, "/dashboard/assets/x.js": 200, "bearer": 200, "wrong": 401, "page": 401,
                     "bad login": 401, "good login": 303, "cookie": 200}
    assert 'name="token"' in form and TOKEN not in cookie


def test_open_paths_can_be_closed_and_no_token_means_open():
    async def script(client):
        return [(await client.get(p)).status for p in ("/health", "/metrics", "/members/x")]
    assert _requests(Access(SecretStr(TOKEN), open_paths=()), script) == [401, 401, 401]
    assert _requests(Access(None), script) == [200, 200, 200]
