"""The review console through the ASGI app (TestClient): sign-in, sessions and CSRF,
roles, security headers, the failed-login throttle, and the rule that media is never
sent unblurred without an audited, time-limited reveal.

Cases are made end to end: a synthetic picture that matches the demo bank is scanned
through ``POST /v1/scan``; the rules block it and open a review case.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from PIL import Image
from tests.console_seed import PASSWORD, Seeded, scan, seed

import safehold.access.keys
import safehold.access.users
from safehold.store import Database
from safehold.web.app import create_app
from safehold.web.ui import reveal
from safehold.web.ui.render import CSP

BASE = "http://127.0.0.1"


@dataclass
class Console:
    app: Any
    db: Database
    seeded: Seeded
    tmp: Path

    def client(self, base_url: str = BASE) -> TestClient:
        return TestClient(self.app, base_url=base_url)

    @property
    def svc(self) -> Any:
        return self.app.state.service


def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(safehold.access.users, "_hasher", cheap)
    monkeypatch.setattr(safehold.access.keys, "_hasher", cheap)


def _console(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **seed_kw: Any
) -> Iterator[Console]:
    _cheap_argon2(monkeypatch)
    monkeypatch.setenv("SAFEHOLD_MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.setenv("SAFEHOLD_WEBHOOK_RETRIES", "0")
    db = Database(url)
    seeded = seed(db, tmp_path, **seed_kw)
    app = create_app(db, queue_url="memory://?immediate=1", worker=False)
    with TestClient(app, base_url=BASE):  # runs the lifespan (index loaded)
        yield Console(app, db, seeded, tmp_path)
    db.close()


@pytest.fixture()
def console(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    yield from _console(sqlite_url, tmp_path, monkeypatch)


@pytest.fixture()
def console_db(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """The console on SQLite and on PostgreSQL."""
    yield from _console(db_url, tmp_path, monkeypatch)


# --- helpers ---------------------------------------------------------------------------


def login_token(client: TestClient) -> str:
    r = client.get("/ui/login")
    assert r.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert found
    return found.group(1)


def login(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Sign in; returns the session's CSRF token."""
    token = login_token(client)
    r = client.post(
        "/ui/login",
        data={"name": name, "password": password, "csrf": token, "next": "/ui/me"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    page = client.get("/ui/me")
    assert page.status_code == 200
    return csrf_of(page.text)


def csrf_of(html: str) -> str:
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def make_case(c: Console, client: TestClient, picture: int = 1, account: str = "acct-1") -> int:
    """Scan a demo query picture that matches the bank; the case id it opened."""
    path = c.seeded.demo.queries[picture]
    body = scan(client, c.seeded.key, path, account_id=account, content_id=path.name)
    assert body["decision"] == "block"
    assert "review" in body["actions"]
    page = c.svc.cases.list_cases("default")
    case = next(x for x in page.cases if x.account_id == account)
    return int(case.id)


def img_srcs(html: str) -> list[str]:
    return [s.replace("&amp;", "&") for s in re.findall(r'<img src="([^"]+)"', html)]


def is_greyscale(data: bytes) -> bool:
    im = Image.open(io.BytesIO(data))
    if im.mode == "L":
        return True
    r, g, b = im.convert("RGB").split()
    return (
        r.tobytes() == g.tobytes() == b.tobytes()
        or max(abs(x - y) for x, y in zip(r.tobytes(), b.tobytes(), strict=True)) <= 8
    )


# --- sign-in ---------------------------------------------------------------------------


def test_pages_need_a_session(console: Console) -> None:
    with console.client() as client:
        r = client.get("/ui/queue/default", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/ui/login?next=/ui/queue/default"
        r = client.get("/ui/", headers={"HX-Request": "true"}, follow_redirects=False)
        assert r.status_code == 401
        assert r.headers["HX-Redirect"].startswith("/ui/login")
        # a POST without a session is refused, not performed
        r = client.post("/ui/me/blur", data={"blur": "8", "csrf": "x"}, follow_redirects=False)
        assert r.status_code == 401


def test_login_sets_a_strict_session_cookie(console_db: Console) -> None:
    with console_db.client() as client:
        token = login_token(client)
        r = client.post(
            "/ui/login",
            data={"name": "rita", "password": PASSWORD, "csrf": token, "next": "/ui/"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert r.headers["location"] == "/ui/"
        cookie = next(
            v for k, v in r.headers.multi_items() if k == "set-cookie" and "safehold_session" in v
        )
        attrs = {a.strip().lower() for a in cookie.split(";")}
        assert "httponly" in attrs
        assert "samesite=strict" in attrs
        assert "path=/ui" in attrs
        assert "secure" not in attrs  # plain http on loopback
        assert client.get("/ui/").status_code == 200
        entries = console_db.svc.audit.list(action="login", actor="user:rita")
        assert len(entries) == 1


def test_session_cookie_is_secure_over_https(console: Console) -> None:
    with console.client("https://127.0.0.1") as client:
        token = login_token(client)
        r = client.post(
            "/ui/login",
            data={"name": "rita", "password": PASSWORD, "csrf": token},
            follow_redirects=False,
        )
        cookie = next(
            v for k, v in r.headers.multi_items() if k == "set-cookie" and "safehold_session" in v
        )
        assert "secure" in {a.strip().lower() for a in cookie.split(";")}


def test_wrong_password_is_refused_and_audited(console: Console) -> None:
    with console.client() as client:
        token = login_token(client)
        r = client.post(
            "/ui/login", data={"name": "rita", "password": "not-the-password", "csrf": token}
        )
        assert r.status_code == 401
        assert "Wrong user name or password" in r.text
        assert "safehold_session" not in client.cookies
        assert console.svc.audit.list(action="login_failed")


def test_login_form_needs_its_csrf_token(console: Console) -> None:
    with console.client() as client:
        login_token(client)
        r = client.post("/ui/login", data={"name": "rita", "password": PASSWORD, "csrf": "forged"})
        assert r.status_code == 403
        r = client.post("/ui/login", data={"name": "rita", "password": PASSWORD})
        assert r.status_code == 403
        assert "safehold_session" not in client.cookies


def test_failed_logins_are_rate_limited_per_name(console: Console) -> None:
    with console.client() as client:
        token = login_token(client)
        for _ in range(5):
            r = client.post("/ui/login", data={"name": "rita", "password": "wrong", "csrf": token})
            assert r.status_code == 401
        # now even the right password is refused for a while, with Retry-After
        r = client.post("/ui/login", data={"name": "rita", "password": PASSWORD, "csrf": token})
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) > 0
        assert "too many failed sign-ins" in r.text
        # another name is not affected
        r = client.post(
            "/ui/login",
            data={"name": "remy", "password": PASSWORD, "csrf": token},
            follow_redirects=False,
        )
        assert r.status_code == 303


def test_login_next_stays_inside_the_console(console: Console) -> None:
    with console.client() as client:
        token = login_token(client)
        for target in ("//evil.example/ui/", "https://evil.example/", "/v1/banks"):
            client.cookies.delete("safehold_session")
            r = client.post(
                "/ui/login",
                data={"name": "rita", "password": PASSWORD, "csrf": token, "next": target},
                follow_redirects=False,
            )
            assert r.headers["location"] == "/ui/", target


def test_logout_needs_csrf_and_ends_the_session(console: Console) -> None:
    with console.client() as client:
        csrf = login(client, "rita")
        r = client.post("/ui/logout", data={"csrf": "wrong"})
        assert r.status_code == 403
        assert client.get("/ui/me").status_code == 200
        r = client.post("/ui/logout", data={"csrf": csrf})
        assert r.status_code == 200
        assert "You are signed out" in r.text
        assert client.get("/ui/me", follow_redirects=False).status_code == 303
        assert console.svc.audit.list(action="logout", actor="user:rita")


# --- CSRF and headers ------------------------------------------------------------------


def test_posts_without_the_session_csrf_token_are_refused(console: Console) -> None:
    with console.client() as client:
        csrf = login(client, "rita")
        assert client.post("/ui/me/blur", data={"blur": "8"}).status_code == 403
        r = client.post("/ui/me/blur", data={"blur": "8", "csrf": "x" * len(csrf)})
        assert r.status_code == 403
        assert "CSRF" in r.text
        r = client.post("/ui/me/blur", data={"blur": "8"}, headers={"X-CSRF-Token": csrf + "x"})
        assert r.status_code == 403
        assert console.svc.users.by_name("rita").blur == 24
        # the right token, as a form field or as the htmx header
        r = client.post("/ui/me/blur", data={"blur": "8", "csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303
        r = client.post(
            "/ui/me/blur",
            data={"blur": "10"},
            headers={"X-CSRF-Token": csrf},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert console.svc.users.by_name("rita").blur == 10
        # a token of another session does not work either
        with console.client() as other:
            other_csrf = login(other, "remy")
        assert client.post("/ui/me/blur", data={"blur": "8", "csrf": other_csrf}).status_code == 403


def test_security_headers(console: Console) -> None:
    with console.client() as client:
        pages = [client.get("/ui/login")]
        login(client, "alice")
        for path in ("/ui/", "/ui/me", "/ui/audit", "/ui/admin/users", "/ui/rules", "/ui/nope/x"):
            pages.append(client.get(path))
        for r in pages:
            if r.status_code == 404 and r.headers["content-type"].startswith("application/"):
                continue  # unknown paths fall through to the API's problem+json
            assert r.headers["content-security-policy"] == CSP
            assert "default-src 'self'" in CSP
            assert "img-src 'self' blob: data:" in CSP
            assert "frame-ancestors 'none'" in CSP
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "no-referrer"
        html = pages[1].text
        assert "https://" not in re.sub(r"https://safehold\.dev[^\"']*", "", html)  # no CDN
        assert 'src="/ui/static/htmx.min.js"' in html


# --- roles -----------------------------------------------------------------------------


ADMIN_PAGES = ("/ui/admin/users", "/ui/rules", "/ui/webhooks")


def test_roles(console: Console) -> None:
    with console.client() as client:
        case_id = make_case(console, client)
    with console.client() as rita:
        csrf = login(rita, "rita")
        for path in (*ADMIN_PAGES, "/ui/audit", "/ui/team"):
            r = rita.get(path)
            assert r.status_code == 403, path
            assert "Not allowed" in r.text
        r = rita.post(
            "/ui/admin/users",
            data={"name": "mallory", "password": PASSWORD, "role": "admin", "csrf": csrf},
        )
        assert r.status_code == 403
        r = rita.post("/ui/admin/users/remy/role", data={"role": "admin", "csrf": csrf})
        assert r.status_code == 403
        assert console.svc.users.by_name("remy").role == "reviewer"
        page = rita.get(f"/ui/cases/{case_id}")
        assert page.status_code == 200
        assert "data-reveal" in page.text and 'id="decide-form"' in page.text
    with console.client() as leo:
        login(leo, "leo")
        assert leo.get("/ui/team").status_code == 200
        for path in (*ADMIN_PAGES, "/ui/audit"):
            assert leo.get(path).status_code == 403, path
    with console.client() as alice:
        login(alice, "alice")
        for path in (*ADMIN_PAGES, "/ui/audit", "/ui/team"):
            assert alice.get(path).status_code == 200, path
    with console.client() as aude:
        csrf = login(aude, "aude")
        assert aude.get("/ui/audit").status_code == 200
        assert aude.get("/ui/").status_code == 200
        page = aude.get(f"/ui/cases/{case_id}")
        assert page.status_code == 200
        assert "data-reveal" not in page.text
        assert 'id="decide-form"' not in page.text
        assert "/revealed" not in page.text
        for path in (*ADMIN_PAGES, "/ui/team"):
            assert aude.get(path).status_code == 403, path
        item = console.svc.cases.get(case_id).items[0].id
        r = aude.post(f"/ui/cases/{case_id}/items/{item}/reveal", data={"csrf": csrf})
        assert r.status_code == 403
        r = aude.post(
            f"/ui/cases/{case_id}/decide",
            data={"action": "no_violation", "reason": "x", "csrf": csrf},
        )
        assert r.status_code == 403
        assert aude.get("/ui/next", follow_redirects=False).status_code == 403
        assert console.svc.cases.get(case_id).case.state == "new"


def test_disabled_user_loses_the_session(console: Console) -> None:
    with console.client() as rita, console.client() as alice:
        login(rita, "rita")
        csrf = login(alice, "alice")
        r = alice.post("/ui/admin/users/rita/disable", data={"csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303
        assert rita.get("/ui/me", follow_redirects=False).status_code == 303
        assert console.svc.audit.list(action="user_disable")


def test_admin_creates_users_and_changes_roles(console: Console) -> None:
    with console.client() as alice:
        csrf = login(alice, "alice")
        r = alice.post(
            "/ui/admin/users",
            data={"name": "nina", "password": "short", "role": "reviewer", "csrf": csrf},
        )
        assert r.status_code == 422
        assert "12" in r.text
        r = alice.post(
            "/ui/admin/users",
            data={"name": "nina", "password": PASSWORD, "role": "reviewer", "csrf": csrf},
        )
        assert r.status_code == 200 and "Done: created nina" in r.text
        r = alice.post("/ui/admin/users/nina/role", data={"role": "lead", "csrf": csrf})
        assert r.status_code == 200
        assert console.svc.users.by_name("nina").role == "lead"
        actions = [e.action for e in console.svc.audit.list(object_type="user", object_id="nina")]
        assert "user_create" in actions and "role_change" in actions
        assert "argon2id" not in r.text and PASSWORD not in r.text


# --- media and reveal ------------------------------------------------------------------


def test_media_is_blurred_until_an_audited_time_limited_reveal(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    with console.client() as client:
        case_id = make_case(console, client)
    item = console.svc.cases.get(case_id).items[0]
    assert item.media_id is not None
    base = f"/ui/cases/{case_id}/items/{item.id}"
    with console.client() as rita:
        csrf = login(rita, "rita")
        page = rita.get(f"/ui/cases/{case_id}")
        srcs = img_srcs(page.text)
        assert srcs == [f"{base}/blurred"]
        assert 'class="blurred"' in page.text
        blurred = rita.get(srcs[0])
        assert blurred.status_code == 200
        assert blurred.headers["content-type"] == "image/jpeg"
        assert "no-store" in blurred.headers["cache-control"]
        assert is_greyscale(blurred.content)
        assert not console.svc.audit.list(action="view_media")

        # no way to the original without a reveal: no signature, a forged or expired one
        assert rita.get(f"{base}/revealed").status_code == 422
        exp = int(time.time()) + 60
        forged = f"{base}/revealed?exp={exp}&frame=-1&sig={'0' * 64}"
        assert rita.get(forged).status_code == 403
        wrong_key = reveal.signed_url(
            "not-the-session-secret",
            case_id=case_id,
            item_id=item.id,
            user_id=console.svc.users.by_name("rita").id,
            expires=exp,
        )
        assert rita.get(wrong_key).status_code == 403
        expired = reveal.signed_url(
            csrf,
            case_id=case_id,
            item_id=item.id,
            user_id=console.svc.users.by_name("rita").id,
            expires=int(time.time()) - 1,
        )
        assert rita.get(expired).status_code == 403
        # a reveal needs the CSRF token
        assert rita.post(f"{base}/reveal").status_code == 403
        assert not console.svc.audit.list(action="view_media")

        r = rita.post(f"{base}/reveal", headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
        assert r.status_code == 200
        assert "is-revealed" in r.text and "data-countdown" in r.text
        (url,) = [s for s in img_srcs(r.text) if "/revealed?" in s]
        query = parse_qs(urlparse(url).query)
        assert 0 < int(query["exp"][0]) - time.time() <= reveal.reveal_seconds() + 1
        original = rita.get(url)
        assert original.status_code == 200
        assert original.headers["content-type"] == "image/jpeg"
        assert "no-store" in original.headers["cache-control"]
        assert not is_greyscale(original.content)
        assert original.content != blurred.content

        views = console.svc.audit.list(action="view_media")
        assert len(views) == 1
        assert views[0].actor == "user:rita" and views[0].object_id == str(case_id)
        assert views[0].details["item_id"] == item.id
        exposure = console.svc.wellness.today(console.svc.users.by_name("rita").id)
        assert exposure.items == 1

        # the link works for this session only ...
        with console.client() as remy:
            login(remy, "remy")
            assert remy.get(url).status_code == 403
        # ... and only until it expires
        real_time = time.time
        monkeypatch.setattr(reveal.time, "time", lambda: real_time() + 3600)
        assert rita.get(url).status_code == 403


def test_blur_strength_follows_the_reviewer(console: Console) -> None:
    with console.client() as client:
        case_id = make_case(console, client)
    item = console.svc.cases.get(case_id).items[0]
    url = f"/ui/cases/{case_id}/items/{item.id}/blurred"
    with console.client() as rita:
        csrf = login(rita, "rita")
        strong = rita.get(url).content
        rita.post("/ui/me/blur", data={"blur": "4", "csrf": csrf})
        light = rita.get(url).content
        assert strong != light
        assert is_greyscale(light)
        r = rita.post("/ui/me/blur", data={"blur": "0", "csrf": csrf})
        assert r.status_code == 422  # never unblurred by a setting


def test_media_of_another_tenant_is_not_found(console: Console) -> None:
    with console.client() as client:
        case_id = make_case(console, client)
    item = console.svc.cases.get(case_id).items[0]
    console.svc.users.create("otto", PASSWORD, "reviewer", tenant="other")
    with console.client() as otto:
        login(otto, "otto")
        assert otto.get(f"/ui/cases/{case_id}").status_code == 404
        assert otto.get(f"/ui/cases/{case_id}/items/{item.id}/blurred").status_code == 404
        # an item id under another case id of the same tenant is refused too
        assert otto.get(f"/ui/cases/999/items/{item.id}/blurred").status_code == 404


# --- working a case --------------------------------------------------------------------


def test_queue_next_decide_and_audit(console_db: Console) -> None:
    c = console_db
    with c.client() as client:
        case_id = make_case(c, client)
    with c.client() as rita:
        csrf = login(rita, "rita")
        home = rita.get("/ui/")
        assert "default" in home.text and "Take next case" in home.text
        listing = rita.get("/ui/queue/default")
        assert f"/ui/cases/{case_id}" in listing.text
        r = rita.post("/ui/next", data={"csrf": csrf, "queue": "default"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/ui/cases/{case_id}"
        assert c.svc.cases.get(case_id).case.state == "in_review"
        page = rita.get(f"/ui/cases/{case_id}")
        assert "demo" in page.text and "A2" in page.text  # the match beside the media
        r = rita.post(
            f"/ui/cases/{case_id}/decide",
            data={"action": "remove", "label": "A2", "reason": "matches the bank", "csrf": csrf},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert c.svc.cases.get(case_id).case.state == "actioned"
        r = rita.post(f"/ui/cases/{case_id}/comments", data={"body": "done", "csrf": csrf})
        assert r.status_code == 200
        assert "done" in r.text
        nothing = rita.get("/ui/next?queue=default")
        assert "No open case" in nothing.text
    with c.client() as alice:
        login(alice, "alice")
        audit = alice.get(f"/ui/audit?object=case:{case_id}")
        assert "decide" in audit.text and "view_case" in audit.text
        r = alice.post("/ui/audit/verify", headers={"X-CSRF-Token": csrf_of(audit.text)})
        assert r.status_code == 200 and "Chain intact" in r.text


def test_two_person_rule_for_referrals(console: Console) -> None:
    with console.client() as client:
        case_id = make_case(console, client)
    with console.client() as rita:
        csrf = login(rita, "rita")
        r = rita.post(
            f"/ui/cases/{case_id}/decide",
            data={"action": "refer", "label": "A2", "reason": "refer it", "csrf": csrf},
        )
        assert r.status_code == 200
        assert "Waiting for a second reviewer" in r.text
        pending = console.svc.cases.get(case_id).pending
        assert pending is not None
        # the proposer cannot confirm their own proposal
        r = rita.post(
            f"/ui/decisions/{pending.id}/confirm", data={"case_id": case_id, "csrf": csrf}
        )
        assert r.status_code in (403, 409)
        assert console.svc.cases.get(case_id).case.state == "decided"
    with console.client() as remy:
        csrf = login(remy, "remy")
        page = remy.get(f"/ui/cases/{case_id}")
        assert f"/ui/decisions/{pending.id}/confirm" in page.text
        r = remy.post(
            f"/ui/decisions/{pending.id}/confirm", data={"case_id": case_id, "csrf": csrf}
        )
        assert r.status_code == 200
    assert console.svc.cases.get(case_id).case.state == "referred"


def test_notifications_rules_and_webhooks_pages(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for c in _console(sqlite_url, tmp_path, monkeypatch, rules=True):
        with c.client() as client:
            path = c.seeded.demo.queries[0]  # demo-00: A1, the urgent queue
            body = scan(client, c.seeded.key, path, account_id="acct-9", content_id="c-1")
            assert body["decision"] == "block"
        with c.client() as leo:
            login(leo, "leo")
            home = leo.get("/ui/")
            assert "urgent" in home.text
            assert 'data-testid="notice-count">1<' in home.text
            notes = leo.get("/ui/notifications")
            assert "Urgent case" in notes.text
            assert 'data-testid="notice-count"' not in leo.get("/ui/").text  # now read
        with c.client() as alice:
            login(alice, "alice")
            rules = alice.get("/ui/rules")
            assert "known-csam-urgent" in rules.text and "shadow" in rules.text
            hooks = alice.get("/ui/webhooks")
            assert "127.0.0.1:9/safehold-hook" in hooks.text


def test_daily_limit_pauses_assignment(console: Console) -> None:
    with console.client() as client:
        first = make_case(console, client, picture=1, account="acct-1")
        make_case(console, client, picture=2, account="acct-2")
    console.svc.users.set_daily_limit("rita", 1)
    item = console.svc.cases.get(first).items[0]
    with console.client() as rita:
        csrf = login(rita, "rita")
        rita.post(f"/ui/cases/{first}/items/{item.id}/reveal", data={"csrf": csrf})
        page = rita.get("/ui/next")
        assert "exposure limit" in page.text
        assert "1 of 1 items revealed today" in re.sub(
            r"\s+", " ", re.sub(r"<[^>]+>", "", page.text)
        )
        assert "assignment paused" in rita.get("/ui/me").text
    with console.client() as leo:
        login(leo, "leo")
        team = leo.get("/ui/team")
        assert "paused" in team.text
