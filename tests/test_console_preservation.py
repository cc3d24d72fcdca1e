"""Preservation requests and law-enforcement packages in the review console (TestClient;
SQLite and PostgreSQL for the main flows): a lead records a request (hostile text is
escaped), preserves the account, sees the deadline (overdue highlighted), makes a
package of the case answering it, downloads the manifest and the encrypted bundle
(audited), and fulfils the request with it; withdrawing releases the holds. Reviewers
get 403 everywhere here, auditors read requests but neither act nor make packages.
The pictures scanned are drawn by code."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyrage
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from tests.console_seed import PASSWORD
from tests.test_package import World, make_world, suspect_case

from safehold.store.models import PreservationRequest, utcnow
from safehold.web.ui.render import CSP

HOSTILE = '<script>alert("x")</script>\u202eLE-1'


@pytest.fixture()
def w(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from make_world(db_url, tmp_path, monkeypatch)


@pytest.fixture()
def ws(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from make_world(sqlite_url, tmp_path, monkeypatch)


def login(client: TestClient, name: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
    assert found
    r = client.post(
        "/ui/login",
        data={"name": name, "password": PASSWORD, "csrf": found.group(1)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:300]
    token = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/ui/me").text)
    assert token
    return token.group(1)


def record(client: TestClient, csrf: str, **form: Any) -> Any:
    data: dict[str, Any] = {
        "csrf": csrf,
        "reference": "LE-2026-0042",
        "authority": "Police Online Child Safety Unit",
        "account_id": "suspect-1",
        "deadline": (utcnow() + timedelta(days=90)).date().isoformat(),
        "kinds": ["content", "account", "events"],
        "notes": "received by e-mail",
    }
    data.update(form)
    return client.post("/ui/preservation", data=data, follow_redirects=False)


def request_id(r: Any) -> int:
    assert r.status_code == 303, r.text[:800]
    found = re.fullmatch(r"/ui/preservation/(\d+)\?done=recorded", r.headers["location"])
    assert found, r.headers["location"]
    return int(found.group(1))


def test_a_lead_works_a_request_and_packages_the_case(w: World) -> None:
    case_id = suspect_case(w)
    identity = pyrage.x25519.Identity.generate()
    with w.client() as client:
        csrf = login(client, "leo")
        r = client.get("/ui/preservation")
        assert r.status_code == 200 and 'method="post" action="/ui/preservation"' in r.text
        assert r.headers["Content-Security-Policy"] == CSP
        assert 'href="/ui/preservation" aria-current="page"' in r.text  # the nav link
        rid = request_id(record(client, csrf))
        page = client.get(f"/ui/preservation/{rid}?done=recorded")
        assert "Request recorded" in page.text and "LE-2026-0042" in page.text
        assert "Preserve now" in page.text

        r = client.post(
            f"/ui/preservation/{rid}/preserve", data={"csrf": csrf}, follow_redirects=False
        )
        assert r.status_code == 303 and r.headers["location"].endswith("done=preserved")
        req = w.preservations().get(rid)
        assert req.status == "preserved" and req.vault_items and req.case_id == case_id
        page = client.get(f"/ui/preservation/{rid}").text
        assert page.count("on hold") >= len(req.vault_items)

        # the package of the case, answering the request
        form = client.get(f"/ui/cases/{case_id}/package?request={rid}")
        assert form.status_code == 200 and f'<option value="{rid}" selected' in form.text
        r = client.post(
            f"/ui/cases/{case_id}/package",
            data={
                "csrf": csrf,
                "recipient": str(identity.to_public()),
                "reason": "answer LE-2026-0042",
                "request_id": str(rid),
            },
        )
        assert r.status_code == 200, r.text[:2000]
        assert 'data-testid="package-result"' in r.text
        sha = re.search(r'data-testid="manifest-sha256">([0-9a-f]{64})<', r.text)
        assert sha
        bundle_url = re.search(r'href="(/ui/cases/\d+/package/pkg_[0-9a-f]{16}/bundle)"', r.text)
        manifest_url = re.search(
            r'href="(/ui/cases/\d+/package/pkg_[0-9a-f]{16}/manifest.json)"', r.text
        )
        assert bundle_url and manifest_url
        export_id = bundle_url.group(1).split("/")[-2]
        # on the server: in SAFEHOLD_EXPORT_DIR, private
        root = w.tmp / "exports"
        assert (root.stat().st_mode & 0o777) == 0o700
        assert (root / f"case-{case_id}-{export_id}" / "summary.pdf").is_file()

        m = client.get(manifest_url.group(1))
        assert m.status_code == 200 and m.headers["cache-control"] == "no-store, private"
        assert hashlib.sha256(m.content).hexdigest() == sha.group(1)
        assert m.json()["request"]["id"] == rid
        b = client.get(bundle_url.group(1))
        assert b.status_code == 200 and "attachment" in b.headers["content-disposition"]
        with tarfile.open(fileobj=io.BytesIO(pyrage.decrypt(b.content, [identity]))) as tar:
            names = tar.getnames()
        assert f"case-{case_id}-{export_id}/summary.pdf" in names
        downloads = w.svc.audit.list(action="package_download")
        assert {d.details["file"] for d in downloads} == {"manifest.json", "bundle"}
        assert all(d.actor == "user:leo" and d.object_id == str(case_id) for d in downloads)
        [export] = w.svc.audit.list(action="export", object_type="case")
        assert export.details["request_reference"] == "LE-2026-0042"

        # fulfilled with that package; the page says so
        page = client.get(f"/ui/preservation/{rid}").text
        assert f'<option value="{export_id}">' in page
        r = client.post(
            f"/ui/preservation/{rid}/fulfil",
            data={"csrf": csrf, "export_id": export_id, "note": "sent to the unit"},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text[:1000]
        page = client.get(f"/ui/preservation/{rid}").text
        assert "fulfilled" in page and sha.group(1) in page
        assert w.preservations().get(rid).status == "fulfilled"
        # the holds stay after fulfilment
        assert w.preservations().active_holds(rid)


def test_deadlines_withdrawal_and_hostile_text(w: World) -> None:
    suspect_case(w)
    with w.client() as client:
        csrf = login(client, "alice")  # an admin
        rid = request_id(
            record(client, csrf, reference=HOSTILE, authority=HOSTILE, notes=f"{HOSTILE}\nline two")
        )
        other = request_id(record(client, csrf, reference="LE-soon", account_id="other-2"))
        with w.db.session() as s:
            s.execute(
                update(PreservationRequest)
                .where(PreservationRequest.id == rid)
                .values(deadline_at=utcnow() - timedelta(days=1))
            )
            s.execute(
                update(PreservationRequest)
                .where(PreservationRequest.id == other)
                .values(deadline_at=utcnow() + timedelta(days=2))
            )
        page = client.get("/ui/preservation").text
        assert "<script>alert" not in page and "&lt;script&gt;alert" in page
        assert "\u202e" not in page
        row = re.search(rf'<tr class="([^"]*)" data-testid="request-{rid}">', page)
        assert row and "is-overdue" in row.group(1)
        assert 'data-testid="overdue"' in page and "due soon" in page
        assert re.search(r'data-testid="overdue-count"><strong>1<', page)
        # the overdue one is listed first
        assert page.index(f'data-testid="request-{rid}"') < page.index(
            f'data-testid="request-{other}"'
        )
        detail = client.get(f"/ui/preservation/{rid}").text
        assert "&lt;script&gt;" in detail and "<script>alert" not in detail
        client.post(f"/ui/preservation/{rid}/preserve", data={"csrf": csrf})
        held = w.preservations().active_holds(rid)
        assert held
        r = client.post(f"/ui/preservation/{rid}/withdraw", data={"csrf": csrf, "reason": ""})
        assert r.status_code == 422 and "reason is required" in r.text
        r = client.post(
            f"/ui/preservation/{rid}/withdraw",
            data={"csrf": csrf, "reason": "the force withdrew it"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert w.preservations().get(rid).status == "withdrawn"
        assert not w.preservations().active_holds(rid)
        r = client.post(f"/ui/preservation/{rid}/preserve", data={"csrf": csrf})
        assert r.status_code == 409 and "withdrawn" in r.text
        # inline errors of the form: past deadline, no kind of data, unknown request
        r = record(client, csrf, reference="LE-3", deadline="2020-01-01")
        assert r.status_code == 422 and "not in the future" in r.text
        assert 'value="LE-3"' in r.text  # the form keeps what was typed
        r = record(client, csrf, reference="LE-4", kinds=[])
        assert r.status_code == 422 and "at least one kind" in r.text
        assert client.get("/ui/preservation/99999").status_code == 404


def test_roles(ws: World) -> None:
    case_id = suspect_case(ws)
    rid = (
        ws.preservations()
        .record("default", "LE-1", "Police", "suspect-1", None, None, "cli:test")
        .id
    )
    with ws.client() as client:
        csrf = login(client, "rita")  # a reviewer
        for url in (
            "/ui/preservation",
            f"/ui/preservation/{rid}",
            f"/ui/cases/{case_id}/package",
        ):
            assert client.get(url).status_code == 403, url
        assert record(client, csrf).status_code == 403
        assert "/ui/preservation" not in client.get("/ui/me").text  # no nav link
    with ws.client() as client:
        csrf = login(client, "aude")  # an auditor reads requests, acts on nothing
        page = client.get("/ui/preservation")
        assert (
            page.status_code == 200 and 'method="post" action="/ui/preservation"' not in page.text
        )
        assert client.get(f"/ui/preservation/{rid}").status_code == 200
        assert "Preserve now" not in client.get(f"/ui/preservation/{rid}").text
        assert record(client, csrf).status_code == 403
        for action in ("preserve", "withdraw", "fulfil"):
            r = client.post(f"/ui/preservation/{rid}/{action}", data={"csrf": csrf, "reason": "x"})
            assert r.status_code == 403, action
        assert client.get(f"/ui/cases/{case_id}/package").status_code == 403
        r = client.post(f"/ui/cases/{case_id}/package", data={"csrf": csrf, "recipient": "x"})
        assert r.status_code == 403
    with ws.client() as client:
        login(client, "leo")
        # no CSRF token: refused
        r = client.post(f"/ui/preservation/{rid}/preserve", data={})
        assert r.status_code == 403
        r = client.post(f"/ui/cases/{case_id}/package", data={"recipient": "x", "reason": "y"})
        assert r.status_code == 403
    assert not ws.svc.audit.list(action="preservation_preserve")


def test_package_page_errors_and_downloads(ws: World) -> None:
    case_id = suspect_case(ws)
    identity = pyrage.x25519.Identity.generate()
    with ws.client() as client:
        csrf = login(client, "leo")
        r = client.post(
            f"/ui/cases/{case_id}/package",
            data={"csrf": csrf, "recipient": "age1nope<script>", "reason": "x"},
        )
        assert r.status_code == 422 and 'data-testid="package-error"' in r.text
        assert "<script>" not in r.text.split('data-testid="package-error"')[1][:300]
        r = client.post(
            f"/ui/cases/{case_id}/package",
            data={"csrf": csrf, "recipient": str(identity.to_public()), "reason": ""},
        )
        assert r.status_code == 422 and "reason" in r.text
        assert not ws.svc.audit.list(action="export", object_type="case")
        r = client.post(
            f"/ui/cases/{case_id}/package",
            data={
                "csrf": csrf,
                "recipient": str(identity.to_public()),
                "reason": "facts only",
                "exclude": ["content", "context"],
            },
        )
        assert r.status_code == 200 and 'data-testid="package-result"' in r.text
        export_id = re.search(r"/package/(pkg_[0-9a-f]{16})/bundle", r.text)
        assert export_id
        # listed on the page; downloads only through the checked names
        page = client.get(f"/ui/cases/{case_id}/package").text
        assert export_id.group(1) in page and "facts only" in page
        for bad in ("..%2F..%2Fetc", "pkg_zz", "pkg_0000000000000000"):
            assert client.get(f"/ui/cases/{case_id}/package/{bad}/bundle").status_code == 404
        other_case = ws.case_of("other-2")
        url = f"/ui/cases/{other_case}/package/{export_id.group(1)}/manifest.json"
        assert client.get(url).status_code == 404  # another case's package name
        assert client.get("/ui/cases/99999/package").status_code == 404
