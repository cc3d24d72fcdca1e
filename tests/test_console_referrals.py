"""The referral panel of the case page (TestClient): one reviewer proposes a CyberTipline
report, the same reviewer cannot approve it, a second one does; the report goes to the
local fake NCMEC server and its id shows on the case. Auditors only read."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.api_helpers import bearer, cheap_argon2, new_key
from tests.console_seed import seed_users
from tests.fake_cybertipline import FakeCyberTipline
from tests.intake_helpers import cheap_hashing
from tests.media_factory import photo_like, write_image
from tests.test_console_complaints import BASE, hx, login
from tests.test_referrals import ncmec  # noqa: F401  (the fixture)

from safehold.banks.entries import make_entry
from safehold.hashing import hash_file
from safehold.store import Database
from safehold.web.app import create_app


@pytest.fixture()
def site(
    db_url: str,
    ncmec: FakeCyberTipline,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Any, int]]:
    cheap_hashing(monkeypatch)
    cheap_argon2(monkeypatch)
    db = Database(db_url)
    seed_users(db)  # alice admin, rita and remy reviewers, leo lead, aude auditor
    picture = write_image(tmp_path / "p.png", photo_like(320, 240, seed=33), "png")
    app = create_app(db, queue_url="memory://?immediate=1", worker=False)
    with TestClient(app, base_url=BASE) as client:
        svc = app.state.service
        svc.banks.create("known")
        svc.banks.add("known", [make_entry("pdq", hash_file(picture).pdq or "", ["B1"])])
        svc.replica.sync()
        key = new_key(db, "scan", tenant="default")
        r = client.post(
            "/v1/scan",
            files={"file": ("p.png", picture.read_bytes(), "image/png")},
            data={"account_id": "acct-1", "account": json.dumps({"ip": "198.51.100.7"})},
            headers=bearer(key),
        )
        assert r.json()["decision"] == "block"
        case_id = svc.cases.list_cases("default").cases[0].id
        yield app, case_id
    db.close()


def test_two_reviewers_send_a_cybertipline_report_from_the_case_page(
    site: tuple[Any, int],
    ncmec: FakeCyberTipline,  # noqa: F811
) -> None:
    app, case_id = site
    with TestClient(app, base_url=BASE) as rita, TestClient(app, base_url=BASE) as remy:
        rita_csrf, remy_csrf = login(rita, "rita"), login(remy, "remy")
        page = rita.get(f"/ui/cases/{case_id}").text
        assert 'id="referral-panel"' in page and "Propose a CyberTipline report" in page
        r = rita.post(
            f"/ui/cases/{case_id}/referrals",
            data={
                "incident_type": "child_pornography",
                "annotations": ["sextortion"],
                "notes": "<b>x</b>",
            },
            headers=hx(rita_csrf),
        )
        assert r.status_code == 200 and "proposed" in r.text and "&lt;b&gt;x&lt;/b&gt;" in r.text
        rid = int(re.search(r'data-testid="referral-(\d+)"', r.text).group(1))  # type: ignore[union-attr]
        assert "Waiting for a second reviewer" in r.text
        same = rita.post(f"/ui/referrals/{rid}/approve", headers=hx(rita_csrf))
        assert same.status_code == 422 and "second person" in same.text
        assert ncmec.count("submit") == 0
        ok = remy.post(f"/ui/referrals/{rid}/approve", headers=hx(remy_csrf))
        assert ok.status_code == 200, ok.text[:500]
        assert 'data-status="sent"' in ok.text and "NCMEC report" in ok.text
    assert ncmec.count("submit") == 1
    report_id = next(iter(ncmec.reports))
    with TestClient(app, base_url=BASE) as aude:
        login(aude, "aude")
        shown = aude.get(f"/ui/cases/{case_id}").text
        assert f"NCMEC report {report_id}" in shown
        assert "Approve and send" not in shown and "Propose a CyberTipline" not in shown
        refused = aude.post(f"/ui/cases/{case_id}/referrals", data={})
        assert refused.status_code == 403


def test_without_a_vault_the_panel_says_what_to_configure(
    site: tuple[Any, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, case_id = site
    app.state.service.vault = None
    with TestClient(app, base_url=BASE) as rita:
        csrf = login(rita, "rita")
        assert "SAFEHOLD_VAULT_KEY" in rita.get(f"/ui/cases/{case_id}").text
        r = rita.post(f"/ui/cases/{case_id}/referrals", data={}, headers=hx(csrf))
        assert r.status_code == 422 and "evidence vault is not configured" in r.text
