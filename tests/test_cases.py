"""Cases: opening and attaching, queues, assignment, decisions, the two-person rule,
reopening, comments, related cases and the audit trail."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import update

import safehold.access.users
from safehold.access.users import UserInfo, Users
from safehold.audit import AuditLog
from safehold.cases import Cases, Wellness
from safehold.errors import Conflict, Forbidden, InvalidValue, NotFound, UnknownLabel
from safehold.store import Database
from safehold.store.models import Case, Event, utcnow

PASSWORD = "correct horse battery"
SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


@pytest.fixture(autouse=True)
def _cheap_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(safehold.access.users, "_hasher", cheap)


@pytest.fixture()
def audit(db: Database) -> AuditLog:
    return AuditLog(db)


@pytest.fixture()
def cases(db: Database, audit: AuditLog) -> Cases:
    return Cases(db, audit)


@pytest.fixture()
def people(db: Database, audit: AuditLog) -> dict[str, UserInfo]:
    users = Users(db, audit)
    return {
        name: users.create(name, PASSWORD, role)
        for name, role in [
            ("rita", "reviewer"),
            ("rob", "reviewer"),
            ("lee", "lead"),
            ("ada", "admin"),
            ("aud", "auditor"),
        ]
    }


def _open(cases: Cases, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "tenant": "default",
        "queue": "default",
        "labels": ["B2"],
        "account_id": "acct-1",
        "content_id": "c-1",
        "event_id": None,
        "media_id": None,
        "signals": {"md5": "0" * 32, "sha256": SHA_A, "pdq": "f" * 64, "pdq_quality": 90},
        "matches": [{"bank": "demo", "labels": ["B2"], "distance": 0, "signal_type": "pdq"}],
    }
    args.update(kw)
    return cases.open_or_attach(**args)


# ------------------------------------------------------------------ opening and attaching


def test_open_then_attach_by_account(cases: Cases) -> None:
    first = _open(cases, labels=["B2"])
    second = _open(cases, labels=["A1"], content_id="c-2", signals={"sha256": SHA_B})
    assert first.created and not second.created
    assert first.case_id == second.case_id and first.item_id != second.item_id
    view = cases.get(first.case_id, "default")
    assert view.case.state == "new"
    assert view.case.labels == ("A1", "B2")  # worst first
    assert view.case.priority == 100  # raised to A1's severity
    assert [i.content_id for i in view.items] == ["c-1", "c-2"]
    assert view.items[0].matches[0]["bank"] == "demo"
    assert view.items[0].sha256 == SHA_A and view.items[0].pdq == "f" * 64
    assert view.case.title == "A1 · account acct-1"  # the automatic title follows
    # other queue, other account: new cases
    assert _open(cases, queue="csam").created
    assert _open(cases, account_id="acct-2").created


def test_attach_by_sha256_without_account(cases: Cases) -> None:
    a = _open(cases, account_id=None)
    b = _open(cases, account_id=None, content_id="c-9")
    c = _open(cases, account_id=None, signals={"sha256": SHA_C})
    assert a.case_id == b.case_id != c.case_id
    assert _open(cases, account_id=None, signals={}).created  # nothing to attach by


def test_attach_only_to_open_cases(cases: Cases, people: dict[str, UserInfo]) -> None:
    first = _open(cases)
    cases.decide(first.case_id, people["rita"], label=None, action="no_violation")
    again = _open(cases)
    assert again.created and again.case_id != first.case_id


def test_same_event_is_one_item(cases: Cases) -> None:
    a = _open(cases, event_id=7)
    b = _open(cases, event_id=7)
    assert a.item_id == b.item_id and not b.created
    assert len(cases.get(a.case_id).items) == 1


def test_priority_and_sla(cases: Cases, monkeypatch: pytest.MonkeyPatch) -> None:
    now = utcnow()
    urgent = cases.get(_open(cases, labels=["A1"], account_id="u").case_id).case
    normal = cases.get(_open(cases, labels=["B2"], account_id="n").case_id).case
    assert urgent.priority == 100 and normal.priority == 75
    assert urgent.sla_due_at is not None and normal.sla_due_at is not None
    assert timedelta(hours=3.9) < urgent.sla_due_at - now < timedelta(hours=4.1)
    assert timedelta(hours=23.9) < normal.sla_due_at - now < timedelta(hours=24.1)
    monkeypatch.setenv("SAFEHOLD_SLA_HOURS", "2")
    short = cases.get(_open(cases, labels=[], account_id="s").case_id).case
    assert short.priority == 0
    assert short.sla_due_at is not None
    assert timedelta(hours=1.9) < short.sla_due_at - now < timedelta(hours=2.1)
    given = cases.get(_open(cases, account_id="g", priority=5, sla_seconds=600).case_id).case
    assert given.priority == 5
    assert given.sla_due_at is not None
    assert timedelta(minutes=9) < given.sla_due_at - now < timedelta(minutes=11)


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"labels": ["Z9"]}, UnknownLabel),
        ({"queue": "Bad Queue"}, InvalidValue),
        ({"tenant": "no tenant"}, InvalidValue),
        ({"reports": -1}, InvalidValue),
        ({"sla_seconds": 0}, InvalidValue),
    ],
)
def test_open_refuses_bad_input(cases: Cases, kw: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        _open(cases, **kw)


def test_concurrent_attach_opens_one_case(db_url: str) -> None:
    dbs = [Database(db_url, upgrade=i == 0) for i in range(5)]
    try:
        refs: list[Any] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(dbs))

        def work(d: Database, n: int) -> None:
            try:
                barrier.wait()
                refs.append(_open(Cases(d, AuditLog(d)), content_id=f"c-{n}", event_id=n))
            except BaseException as e:  # pragma: no cover
                errors.append(e)

        threads = [threading.Thread(target=work, args=(d, n)) for n, d in enumerate(dbs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert len({r.case_id for r in refs}) == 1
        assert sum(r.created for r in refs) == 1
    finally:
        for d in dbs:
            d.close()


# ------------------------------------------------------------------ reading


def test_get_is_tenant_scoped(cases: Cases) -> None:
    ref = _open(cases, tenant="acme")
    assert cases.get(ref.case_id, "acme").case.tenant == "acme"
    with pytest.raises(NotFound):
        cases.get(ref.case_id, "default")
    with pytest.raises(NotFound):
        cases.get(99999, "acme")


def test_list_order_filters_and_pages(cases: Cases, db: Database) -> None:
    ids = {}
    for n, (labels, queue) in enumerate(
        [
            (["B2"], "default"),
            (["A1"], "default"),
            (["B1"], "ncii"),
            (["A2"], "default"),
            (["B2"], "default"),
            ([], "default"),
        ]
    ):
        ids[n] = _open(cases, labels=labels, queue=queue, account_id=f"a{n}").case_id
    page = cases.list_cases("default")
    assert [c.id for c in page.cases] == [ids[1], ids[3], ids[2], ids[0], ids[4], ids[5]]
    assert page.next_cursor is None
    # pages of two walk the same order
    seen: list[int] = []
    cursor = None
    while True:
        p = cases.list_cases("default", limit=2, cursor=cursor)
        seen += [c.id for c in p.cases]
        if not p.next_cursor:
            break
        cursor = p.next_cursor
    assert seen == [c.id for c in page.cases]
    assert [c.id for c in cases.list_cases("default", queue="ncii").cases] == [ids[2]]
    assert {c.id for c in cases.list_cases("default", label="csam").cases} == set()
    assert [c.id for c in cases.list_cases("default", label="a1").cases] == [ids[1]]
    assert cases.list_cases("default", state="closed").cases == []
    assert len(cases.list_cases("default", state="open").cases) == 6
    with db.session() as s:
        s.execute(
            update(Case).where(Case.id == ids[0]).values(sla_due_at=utcnow() - timedelta(minutes=1))
        )
    late = cases.list_cases("default", overdue=True).cases
    assert [c.id for c in late] == [ids[0]] and late[0].overdue
    assert ids[0] not in [c.id for c in cases.list_cases("default", overdue=False).cases]
    with pytest.raises(InvalidValue):
        cases.list_cases("default", state="weird")
    with pytest.raises(InvalidValue):
        cases.list_cases("default", cursor="!!not a cursor")
    assert cases.list_cases("acme").cases == []


def test_queue_counts(cases: Cases, people: dict[str, UserInfo], db: Database) -> None:
    a = _open(cases, account_id="a")
    _open(cases, account_id="b")
    c = _open(cases, account_id="c", queue="ncii")
    d = _open(cases, account_id="d", queue="ncii")
    cases.next_case(people["rita"], queue="default")
    cases.decide(c.case_id, people["rita"], label="A1", action="refer")  # proposed: decided
    cases.decide(d.case_id, people["rita"], label="B2", action="remove")  # actioned
    with db.session() as s:
        s.execute(
            update(Case)
            .where(Case.id == a.case_id)
            .values(sla_due_at=utcnow() - timedelta(hours=1))
        )
    counts = {q.queue: q for q in cases.queue_counts("default")}
    assert set(counts) == {"default", "ncii"}
    dq, nq = counts["default"], counts["ncii"]
    assert (dq.new + dq.in_review, dq.decided, dq.open, dq.overdue) == (2, 0, 2, 1)
    assert dq.in_review == 1
    assert (nq.new, nq.in_review, nq.decided, nq.open, nq.overdue) == (0, 0, 1, 1, 0)
    assert dq.next_due is not None and dq.next_due < utcnow()
    assert cases.queue_counts("acme") == []


def test_related_and_account_history(cases: Cases, db: Database) -> None:
    a = _open(cases, account_id="x", signals={"sha256": SHA_A})
    b = _open(cases, account_id="y", signals={"sha256": SHA_A})
    c = _open(cases, account_id="x", queue="other", signals={"sha256": SHA_C})
    d = _open(cases, account_id="z", signals={"sha256": SHA_B, "pdq": "e" * 64})
    e = _open(cases, account_id="w", signals={"sha256": SHA_C, "pdq": "e" * 64})
    _open(cases, account_id="x", tenant="acme", signals={"sha256": SHA_A})
    rel = {r.id: r.related_by for r in cases.related(a.case_id, "default")}
    assert rel == {b.case_id: ("sha256",), c.case_id: ("account",)}
    rel_d = {r.id: r.related_by for r in cases.related(d.case_id, "default")}
    assert rel_d == {e.case_id: ("pdq",)}
    rel_c = {r.id: set(r.related_by) for r in cases.related(c.case_id, "default")}
    assert rel_c == {a.case_id: {"account"}, e.case_id: {"sha256"}}
    with db.session() as s:
        s.add_all(
            [
                Event(
                    tenant="default",
                    account_id="x",
                    decision="block",
                    content_id="c1",
                    actions=[{"kind": "review"}],
                    rules=["r1"],
                ),
                Event(tenant="default", account_id="y", decision="allow"),
                Event(tenant="acme", account_id="x", decision="allow"),
            ]
        )
    history = cases.account_history("default", "x")
    assert [ev.decision for ev in history.events] == ["block"]
    assert history.events[0].actions == ["review"] and history.events[0].rules == ["r1"]
    assert [cs.id for cs in history.cases] == [c.case_id, a.case_id]
    assert history.to_dict()["account_id"] == "x"


# ------------------------------------------------------------------ work and decide


def test_next_case_assigns_the_most_urgent(
    cases: Cases, people: dict[str, UserInfo], audit: AuditLog
) -> None:
    low = _open(cases, labels=["B2"], account_id="low")
    high = _open(cases, labels=["A1"], account_id="high")
    rita, rob = people["rita"], people["rob"]
    got = cases.next_case(rita)
    assert got is not None and got.id == high.case_id
    assert (got.case.state, got.case.assignee) == ("in_review", "rita")
    again = cases.next_case(rita)  # still hers, still the most urgent
    assert again is not None and again.id == high.case_id
    other = cases.next_case(rob)
    assert other is not None and other.id == low.case_id
    assert cases.next_case(rob, queue="nope") is None
    assigns = audit.list(action="assign")
    assert {e.actor for e in assigns} == {"user:rita", "user:rob"}
    with pytest.raises(Forbidden):
        cases.next_case(people["aud"])


def test_concurrent_next_case_hands_out_distinct_cases(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(safehold.access.users, "_hasher", cheap)
    dbs = [Database(db_url, upgrade=i == 0) for i in range(4)]
    try:
        main = Cases(dbs[0], AuditLog(dbs[0]))
        for n in range(4):
            _open(main, account_id=f"acct-{n}")
        users = Users(dbs[0], AuditLog(dbs[0]))
        reviewers = [users.create(f"r{n}", PASSWORD, "reviewer") for n in range(4)]
        got: list[int] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(4)

        def take(d: Database, who: UserInfo) -> None:
            try:
                barrier.wait()
                view = Cases(d, AuditLog(d)).next_case(who)
                assert view is not None
                got.append(view.id)
            except BaseException as e:  # pragma: no cover
                errors.append(e)

        threads = [
            threading.Thread(target=take, args=(d, u)) for d, u in zip(dbs, reviewers, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert len(set(got)) == 4
        assert AuditLog(dbs[0]).verify().ok
    finally:
        for d in dbs:
            d.close()


def test_wellness_limit_pauses_assignment(
    cases: Cases, db: Database, people: dict[str, UserInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEHOLD_DAILY_REVEAL_LIMIT", "2")
    ref = _open(cases)
    _open(cases, account_id="other")
    rita = people["rita"]
    view = cases.next_case(rita)
    assert view is not None
    cases.reveal(ref.case_id, ref.item_id, rita, seconds=10)
    cases.reveal(ref.case_id, ref.item_id, rita, seconds=10)  # the same item again: still 1
    assert Wellness(db).today(rita.id).items == 1
    assert cases.next_case(rita) is not None
    second = _open(cases, content_id="c-2", signals={"sha256": SHA_B})
    cases.reveal(second.case_id, second.item_id, rita, seconds=5)
    today = Wellness(db).today(rita.id)
    assert (today.items, today.limit, today.paused, today.reveals) == (2, 2, True, 3)
    assert cases.next_case(rita) is None
    assert cases.next_case(people["rob"]) is not None  # others carry on


def test_reveal_is_audited_and_refused_to_auditors(
    cases: Cases, people: dict[str, UserInfo], audit: AuditLog
) -> None:
    ref = _open(cases)
    item = cases.reveal(ref.case_id, ref.item_id, people["rita"], seconds=15)
    assert item.id == ref.item_id
    entry = audit.list(action="view_media")[0]
    assert (entry.actor, entry.object) == ("user:rita", f"case:{ref.case_id}")
    assert entry.details["item_id"] == ref.item_id
    with pytest.raises(Forbidden):
        cases.reveal(ref.case_id, ref.item_id, people["aud"])
    with pytest.raises(NotFound):
        cases.reveal(ref.case_id, 9999, people["rita"])


def test_view_records_view_case(cases: Cases, people: dict[str, UserInfo], audit: AuditLog) -> None:
    ref = _open(cases)
    assert cases.view(ref.case_id, people["aud"]).id == ref.case_id  # auditors read
    assert audit.list(action="view_case")[0].actor == "user:aud"


@pytest.mark.parametrize(
    ("action", "label", "state"),
    [
        ("no_violation", None, "closed"),
        ("remove", "A1", "actioned"),
        ("restrict", "ncii", "actioned"),
    ],
)
def test_decide_moves_the_case_on(
    cases: Cases,
    people: dict[str, UserInfo],
    audit: AuditLog,
    action: str,
    label: str | None,
    state: str,
) -> None:
    ref = _open(cases)
    seen: list[tuple[int, str]] = []
    cases.decided_listeners.append(lambda c, d: seen.append((c.id, d.action)))
    decision = cases.decide(ref.case_id, people["rita"], label=label, action=action, reason="why")
    assert (decision.status, decision.case_state, decision.user) == ("confirmed", state, "rita")
    view = cases.get(ref.case_id)
    assert view.case.state == state and view.case.decided_at is not None
    assert (view.case.closed_at is not None) == (state == "closed")
    assert view.decisions[0].label == label and view.decisions[0].reason == "why"
    entry = audit.list(action="decide")[0]
    assert entry.details == {
        "decision_id": decision.id,
        "label": label,
        "action": action,
        "reason": "why",
        "status": "confirmed",
    }
    assert seen == [(ref.case_id, action)]
    with pytest.raises(Conflict, match="reopen"):
        cases.decide(ref.case_id, people["rita"], label=None, action="no_violation")


def test_escalate(cases: Cases, people: dict[str, UserInfo]) -> None:
    ref = _open(cases, labels=["B2"])
    cases.next_case(people["rita"])
    decision = cases.decide(ref.case_id, people["rita"], label=None, action="escalate")
    view = cases.get(ref.case_id)
    assert decision.case_state == "in_review"
    assert (view.case.queue, view.case.priority, view.case.assignee_id) == ("escalations", 76, None)
    assert cases.decide(ref.case_id, people["lee"], label="B2", action="remove").case_state == (
        "actioned"
    )


def test_decide_checks(cases: Cases, people: dict[str, UserInfo]) -> None:
    ref = _open(cases)
    with pytest.raises(InvalidValue, match="needs a label"):
        cases.decide(ref.case_id, people["rita"], label=None, action="remove")
    with pytest.raises(UnknownLabel):
        cases.decide(ref.case_id, people["rita"], label="Q7", action="remove")
    with pytest.raises(InvalidValue, match="unknown decision action"):
        cases.decide(ref.case_id, people["rita"], label="A1", action="nuke")
    with pytest.raises(InvalidValue, match="too long"):
        cases.decide(ref.case_id, people["rita"], label="A1", action="remove", reason="x" * 3000)
    with pytest.raises(Forbidden):
        cases.decide(ref.case_id, people["aud"], label="A1", action="remove")
    with pytest.raises(NotFound):
        cases.decide(424242, people["rita"], label="A1", action="remove")
    cases.next_case(people["rob"])
    with pytest.raises(Forbidden, match="assigned to someone else"):
        cases.decide(ref.case_id, people["rita"], label="A1", action="remove")
    # a lead may decide a case someone else holds
    assert cases.decide(ref.case_id, people["lee"], label="A1", action="remove").status == (
        "confirmed"
    )


def test_disabled_user_is_refused(
    cases: Cases, people: dict[str, UserInfo], db: Database, audit: AuditLog
) -> None:
    ref = _open(cases)
    Users(db, audit).disable("rita")
    with pytest.raises(Forbidden, match="disabled"):
        cases.decide(ref.case_id, people["rita"], label="A1", action="remove")
    with pytest.raises(Forbidden):
        cases.next_case(people["rita"])


def test_two_person_rule(cases: Cases, people: dict[str, UserInfo], audit: AuditLog) -> None:
    ref = _open(cases, labels=["A1"])
    rita, rob = people["rita"], people["rob"]
    proposed = cases.decide(ref.case_id, rita, label="A1", action="refer", reason="send to NCMEC")
    assert (proposed.status, proposed.case_state) == ("proposed", "decided")
    view = cases.get(ref.case_id)
    assert view.pending is not None and view.pending.id == proposed.id
    with pytest.raises(Conflict, match="awaiting"):
        cases.decide(ref.case_id, rob, label="A1", action="remove")
    with pytest.raises(Forbidden, match="different person"):
        cases.confirm(proposed.id, rita)
    with pytest.raises(Forbidden):
        cases.confirm(proposed.id, people["aud"])
    confirmed = cases.confirm(proposed.id, rob, reason="agree")
    assert (confirmed.status, confirmed.case_state, confirmed.confirmed_by) == (
        "confirmed",
        "referred",
        "rob",
    )
    with pytest.raises(Conflict):
        cases.confirm(proposed.id, people["lee"])
    assert cases.get(ref.case_id).case.state == "referred"
    assert [e.action for e in audit.list(object_type="case", object_id=ref.case_id)][:2] == [
        "confirm",
        "decide",
    ]


def test_two_person_reject_and_configuration(
    cases: Cases, people: dict[str, UserInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEHOLD_TWO_PERSON", "refer,remove")
    ref = _open(cases)
    proposed = cases.decide(ref.case_id, people["rita"], label="B2", action="remove")
    assert proposed.status == "proposed"
    rejected = cases.reject(proposed.id, people["lee"], reason="not clear")
    assert (rejected.status, rejected.case_state) == ("rejected", "in_review")
    monkeypatch.setenv("SAFEHOLD_TWO_PERSON", "")
    done = cases.decide(ref.case_id, people["rita"], label="A1", action="refer")
    assert (done.status, done.case_state) == ("confirmed", "referred")


def test_comment_reopen_close(cases: Cases, people: dict[str, UserInfo], audit: AuditLog) -> None:
    ref = _open(cases)
    comment_id = cases.comment(ref.case_id, people["rita"], "  looks like a known series  ")
    view = cases.get(ref.case_id)
    assert [(c.id, c.user, c.body) for c in view.comments] == [
        (comment_id, "rita", "looks like a known series")
    ]
    for bad in ("", "   ", "x" * 6000):
        with pytest.raises(InvalidValue):
            cases.comment(ref.case_id, people["rita"], bad)
    with pytest.raises(Forbidden):
        cases.comment(ref.case_id, people["aud"], "auditors read only")
    with pytest.raises(Conflict):
        cases.reopen(ref.case_id, people["lee"], "not decided yet")
    cases.decide(ref.case_id, people["rita"], label=None, action="no_violation")
    with pytest.raises(Forbidden):
        cases.reopen(ref.case_id, people["rita"], "reviewers do not reopen")
    with pytest.raises(InvalidValue):
        cases.reopen(ref.case_id, people["lee"], "")
    reopened = cases.reopen(ref.case_id, people["lee"], "new report came in")
    assert (reopened.state, reopened.closed_at) == ("in_review", None)
    assert cases.decide(ref.case_id, people["rob"], label="B2", action="remove").case_state == (
        "actioned"
    )
    other = _open(cases, account_id="dup")
    with pytest.raises(Forbidden):
        cases.close(other.case_id, people["rob"], "duplicate")
    assert cases.close(other.case_id, people["ada"], "duplicate").state == "closed"
    actions = [e.action for e in reversed(audit.list(object_type="case", object_id=ref.case_id))]
    assert actions == ["comment", "decide", "reopen", "decide"]
    assert audit.verify().ok


def test_assign(cases: Cases, people: dict[str, UserInfo], audit: AuditLog) -> None:
    ref = _open(cases)
    rita, rob, lee = people["rita"], people["rob"], people["lee"]
    assert cases.assign(ref.case_id, rita.id, by=rita).assignee == "rita"  # take it
    with pytest.raises(Forbidden):
        cases.assign(ref.case_id, rob.id, by=rob)  # not from someone else
    assert cases.assign(ref.case_id, rob.id, by=lee).assignee == "rob"
    with pytest.raises(InvalidValue):
        cases.assign(ref.case_id, people["aud"].id, by=lee)
    with pytest.raises(NotFound):
        cases.assign(ref.case_id, 99999, by=lee)
    assert cases.assign(ref.case_id, None, by=lee).assignee is None
    assert [e.details["to"] for e in reversed(audit.list(action="assign"))] == ["rita", "rob", None]


def test_audit_entry_is_in_the_same_transaction(
    cases: Cases, people: dict[str, UserInfo], audit: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _open(cases)

    def broken(*args: Any, **kw: Any) -> None:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(audit, "append", broken)
    with pytest.raises(RuntimeError):
        cases.decide(ref.case_id, people["rita"], label="A1", action="remove")
    with pytest.raises(RuntimeError):
        cases.comment(ref.case_id, people["rita"], "hello")
    view = cases.get(ref.case_id)
    assert view.case.state == "new" and view.decisions == [] and view.comments == []
