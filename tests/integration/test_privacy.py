"""Privacy and access on real parts (SECURITY.md): two workers with a pseudonymization
key and an API token take the excerpt, its member ids made unmistakable; no raw id
reaches an output topic, the changelog, a log line or a metrics page, the CRM's
helper maps the alerts' pseudonyms back to exactly the expected members, and the
HTTP API answers 401 without the token and 200 with it, from either worker."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import orjson
import pytest

from stream.contract import topics
from stream.domain.pseudonym import Pseudonymizer, reidentify

from .conftest import excerpt_lines
from .test_crash_safety import _taken
from .test_pipeline import EXPECTED_ALERTS

pytestmark = pytest.mark.integration

KEY, KEY_ID = "0123456789abcdef" * 4, "k2026"
TOKEN = "test-token-" + "x" * 24
RAW = "shopper-"  # every raw member id of the log starts with it


def _raw_ids(lines: list[bytes]) -> tuple[list[bytes], set[str]]:
    """The excerpt with member ids (and keys) `shopper-<id>`; its bad lines as they are."""
    out, members = [], set()
    for line in lines:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            out.append(line)
            continue
        if isinstance(event, dict) and isinstance(event.get("member_id"), str):
            event["member_id"] = RAW + event["member_id"]
            members.add(event["member_id"])
            line = orjson.dumps(event)
        out.append(line)
    return out, members


def _get(url: str, token: str | None = None, accept: str = "application/json", cookie: str | None = None,
         answer_headers: bool = False):
    headers = {"Accept": accept}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cookie:
        headers["Cookie"] = cookie
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            out = r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as exc:
        out = exc.code, exc.read().decode(), exc.headers
    return out if answer_headers else out[:2]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_no_raw_member_id_leaves_the_workers_and_the_api_needs_the_token(cluster):
    lines, members = _raw_ids(excerpt_lines())
    workers = [cluster.start_worker(pseudonymization_key=KEY, pseudonymization_key_id=KEY_ID, api_token=TOKEN)
               for _ in range(2)]
    n = cluster.replay(lines)
    _taken(workers, n, timeout=120)

    # Nothing the workers wrote names a raw member id.
    written = {topic: cluster.read(topic, idle_s=1.0) for topic in
               (*topics.OUTPUTS, topics.DEAD_LETTER, "memberstream-members-changelog")}
    assert written[topics.CHURN_ALERTS] and written[topics.DEAD_LETTER] and written["memberstream-members-changelog"]
    for topic, records in written.items():
        for m in records:
            blob = (m.key or b"") + (m.value or b"") + b"".join(v for _, v in m.headers or ())
            assert RAW.encode() not in blob, (topic, m)
    for w in workers:
        assert RAW not in w.process.log_path.read_text(), w.process.log_path
        status, page = _get(f"{w.web_url}/metrics")
        assert status == 200 and RAW not in page and "memberstream_members" in page
        status, page = _get(f"{w.web_url}/dashboard/data", TOKEN)
        assert status == 200 and RAW not in page and KEY_ID + "." in page

    # The alerts carry pseudonyms; the CRM's helper, with the key and the member list,
    # gives back exactly the members the excerpt's alerts are for.
    alerts = [orjson.loads(m.value) for m in written[topics.CHURN_ALERTS]]
    pseudonyms = {a["member_id"] for a in alerts}
    assert all(p.startswith(KEY_ID + ".") and len(p) == len(KEY_ID) + 33 for p in pseudonyms)
    back = reidentify(pseudonyms, sorted(members), {KEY_ID: KEY})
    assert {(back[a["member_id"]], a["event_time"], tuple(r["code"] for r in a["reasons"])) for a in alerts} == {
        (RAW + member, at, reasons) for member, at, reasons in EXPECTED_ALERTS}
    # A dead letter is minimised: only contract fields, the member id pseudonymised.
    dead = [m for m in written[topics.DEAD_LETTER] if m.value]
    assert dead and all(set(orjson.loads(m.value)) <= {"event_id", "member_id", "type", "item_id", "ts",
                                                       "session_id", "price", "quantity", "category",
                                                       "schema_version"} for m in dead)
    assert all(dict(m.headers)["minimised"] == b"true" for m in written[topics.DEAD_LETTER])

    # HTTP: /health and /metrics open; members, the dashboard and Faust's own pages need the token.
    member = next(iter(pseudonyms))
    expected = Pseudonymizer(KEY, KEY_ID)(back[member])
    assert member == expected
    for w in workers:
        assert _get(f"{w.web_url}/health")[0] == 200
        assert _get(f"{w.web_url}/members/{member}")[0] == 401
        assert _get(f"{w.web_url}/members/{member}", "wrong-" + TOKEN)[0] == 401
        assert _get(f"{w.web_url}/table/")[0] == 401
    # From either worker: the owner answers itself, the other (which may hold a standby
    # copy) asks the owner and says so.
    answers = [_get(f"{w.web_url}/members/{member}", TOKEN, answer_headers=True) for w in workers]
    for status, body, _ in answers:
        assert status == 200, body
        assert json.loads(body)["member_id"] == member and RAW not in body
    forwarded = [headers.get("X-Memberstream-Answered-By") for _, _, headers in answers]
    assert sum(f is not None for f in forwarded) == 1, forwarded
    assert json.loads(answers[0][1]) == json.loads(answers[1][1])
    status, page = _get(f"{workers[0].web_url}/dashboard", accept="text/html")
    assert status == 401 and 'name="token"' in page  # the sign-in form
    # Signing in sets a cookie (derived from the token, not the token) that opens the data.
    opener = urllib.request.build_opener(_NoRedirect)
    form = urllib.parse.urlencode({"token": TOKEN}).encode()
    try:
        opener.open(urllib.request.Request(f"{workers[0].web_url}/dashboard/login", data=form), timeout=10)
        raise AssertionError("no redirect after signing in")
    except urllib.error.HTTPError as exc:
        assert exc.code == 303 and exc.headers["Location"] == "/dashboard"
        cookie = exc.headers["Set-Cookie"].split(";")[0]
        assert "HttpOnly" in exc.headers["Set-Cookie"] and TOKEN not in cookie
    assert _get(f"{workers[0].web_url}/dashboard/data", cookie=cookie)[0] == 200
    assert _get(f"{workers[0].web_url}/dashboard/data", cookie=cookie.split("=")[0] + "=forged")[0] == 401
