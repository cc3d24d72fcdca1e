"""Complaint handling: assess → investigate → resolve, clocks, reopen, recategorise."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from tests.intake_helpers import Hotline, cheap_hashing, hotline

from safehold.errors import Conflict, Forbidden, InvalidValue
from safehold.intake.model import OUTCOMES
from safehold.store import Database
from safehold.store.models import CaseStage, utcnow


@pytest.fixture(autouse=True)
def _cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_hashing(monkeypatch)


@pytest.fixture()
def h(db: Database) -> Hotline:
    return hotline(db)


def test_the_workflow_end_to_end_with_clocks(h: Hotline) -> None:
    r = h.report()
    rita = h.people["rita"]
    case = h.svc.complaints.start_investigation(r.case_id, rita, note="Checking the URL")
    assert case.stage == "investigate" and case.state == "in_review" and case.assignee == "rita"
    assert h.svc.reports.status(r.display_number, r.secret).state == "in_progress"
    with pytest.raises(Conflict, match="not waiting for assessment"):
        h.svc.complaints.start_investigation(r.case_id, rita)
    case = h.svc.complaints.resolve(
        r.case_id, rita, outcome="referred_to_police", reason="imminent risk", label="A2"
    )
    assert case.stage == "resolved" and case.state == "referred" and "A2" in case.labels
    status = h.svc.reports.status(r.display_number, r.secret)
    assert status.state == "resolved" and status.outcome == "referred_to_police"
    clocks = h.svc.complaints.clocks(r.case_id, "default")
    assert [c.stage for c in clocks] == ["assess", "investigate", "resolved"]
    assert all(c.ended_at is not None for c in clocks)
    assert clocks[0].target is not None and clocks[1].target == timedelta(hours=72)
    assert clocks[1].user == "rita"
    actions = [e.action for e in h.svc.audit.list(object_type="case", object_id=str(r.case_id))]
    assert {"complaint_stage", "complaint_resolved"} <= set(actions)


@pytest.mark.parametrize(
    ("outcome", "state"),
    [
        ("advice_given", "closed"),
        ("removed_by_host", "actioned"),
        ("takedown_notice_sent", "actioned"),
        ("url_block_requested", "actioned"),
        ("referred_to_police", "referred"),
        ("no_action", "closed"),
    ],
)
def test_each_outcome_sets_the_case_state(h: Hotline, outcome: str, state: str) -> None:
    assert outcome in OUTCOMES
    r = h.report()
    case = h.svc.complaints.resolve(r.case_id, h.people["rita"], outcome=outcome, reason="why")
    assert case.state == state and case.outcome == outcome and case.closed_at is not None


def test_bad_resolutions_are_refused(h: Hotline) -> None:
    r = h.report()
    rita = h.people["rita"]
    with pytest.raises(InvalidValue, match="unknown outcome"):
        h.svc.complaints.resolve(r.case_id, rita, outcome="deleted_everything")
    with pytest.raises(InvalidValue, match="say why"):
        h.svc.complaints.resolve(r.case_id, rita, outcome="no_action")
    with pytest.raises(Forbidden):
        h.svc.complaints.resolve(r.case_id, h.people["aud"], outcome="advice_given")
    h.svc.complaints.resolve(r.case_id, rita, outcome="advice_given")
    with pytest.raises(Conflict, match="already resolved"):
        h.svc.complaints.resolve(r.case_id, rita, outcome="advice_given")


def test_only_a_lead_reopens(h: Hotline) -> None:
    r = h.report()
    h.svc.complaints.resolve(r.case_id, h.people["rita"], outcome="no_action", reason="not found")
    with pytest.raises(Forbidden):
        h.svc.complaints.reopen(r.case_id, h.people["rita"], "new information")
    with pytest.raises(InvalidValue, match="say why"):
        h.svc.complaints.reopen(r.case_id, h.people["lee"], "")
    case = h.svc.complaints.reopen(r.case_id, h.people["lee"], "new information")
    assert case.stage == "investigate" and case.outcome is None and case.closed_at is None
    assert h.svc.reports.status(r.display_number, r.secret).state == "in_progress"


def test_case_decisions_are_not_for_complaints(h: Hotline) -> None:
    r = h.report()
    with pytest.raises(Conflict, match="is a complaint"):
        h.svc.cases.decide(r.case_id, h.people["rita"], label="A1", action="remove")
    with pytest.raises(Conflict, match="is a complaint"):
        h.svc.cases.close(r.case_id, h.people["lee"], "done")


def test_a_scanned_case_is_not_a_complaint(h: Hotline) -> None:
    ref = h.svc.cases.open_or_attach(
        tenant="default",
        queue="default",
        labels=["A1"],
        account_id="u1",
        content_id="c1",
        event_id=None,
        media_id=None,
        signals={"sha256": "a" * 64},
        matches=[],
    )
    with pytest.raises(Conflict, match="not a complaint"):
        h.svc.complaints.start_investigation(ref.case_id, h.people["rita"])


def test_recategorise_moves_queue_and_keeps_match_labels(h: Hotline) -> None:
    r = h.report(category="other")
    case = h.svc.complaints.recategorise(r.case_id, h.people["rita"], "grooming")
    assert case.queue == "reports-grooming"
    assert case.labels == ("dsa:KEYWORD_GROOMING_SEXUAL_ENTICEMENT_MINORS",)
    assert h.svc.reports.get(r.report_id, "default").category == "grooming"
    with pytest.raises(InvalidValue, match="unknown report category"):
        h.svc.complaints.recategorise(r.case_id, h.people["rita"], "nonsense")


def test_summary_counts_stages_overdue_and_medians(h: Hotline) -> None:
    a, b, c = (
        h.report(urls="https://x.example/1"),
        h.report(urls="https://x.example/2"),
        h.report(urls="https://x.example/3"),
    )
    h.svc.complaints.start_investigation(b.case_id, h.people["rita"])
    h.svc.complaints.resolve(c.case_id, h.people["rita"], outcome="advice_given")
    with h.db.session() as s:  # make a's assessment overdue
        from safehold.store.models import Case

        s.execute(
            update(Case)
            .where(Case.id == a.case_id)
            .values(sla_due_at=utcnow() - timedelta(hours=1))
        )
        s.execute(
            update(CaseStage)
            .where(CaseStage.case_id == b.case_id, CaseStage.stage == "assess")
            .values(started_at=utcnow() - timedelta(hours=2))
        )
    summary = h.svc.complaints.summary("default")
    assert summary.open_by_stage == {"assess": 1, "investigate": 1}
    assert summary.overdue == 1
    assert summary.resolved_by_outcome["advice_given"] == 1
    assessed = summary.median_seconds["assess"]
    assert assessed is not None and assessed > 0
