"""The CyberTipline client against a local fake of NCMEC's API (127.0.0.1 only).

Every failure mode of the flow: bad credentials, errors and lost answers at each step,
crashes between steps, resumption from a stored journal; and NCMEC's documented
answers to steps out of turn (finish twice, retract after finish...). The two files
of each report are synthetic pictures drawn by ``media_factory``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
from lxml import etree

from fake_cybertipline import FakeCyberTipline, report
from safehold.errors import InvalidValue
from safehold.refer.ncmec import (
    PRODUCTION_URL,
    TEST_URL,
    Credentials,
    CyberTiplineAuthError,
    CyberTiplineClient,
    CyberTiplineRejected,
    CyberTiplineServerError,
    CyberTiplineUnavailable,
    FileNotFound,
    FileStage,
    Journal,
    JournalMismatch,
    Phase,
    ReportAlreadyFinished,
    ReportAlreadyRetracted,
    ReportClosed,
    ReportNotFound,
    RetryPolicy,
    SubmitOutcomeUnknown,
    file_details_xml,
    report_xml,
)

ATTEMPTS = 3


class Crash(BaseException):
    """The process dies (not an error the client handles)."""


@pytest.fixture()
def ncmec() -> Iterator[FakeCyberTipline]:
    with FakeCyberTipline() as server:
        yield server


def make_client(url: str, *, password: str = "pswd123", timeout: float = 5.0) -> CyberTiplineClient:
    return CyberTiplineClient(
        Credentials("usr123", password),
        base_url=url,
        timeout=timeout,
        retry=RetryPolicy(attempts=ATTEMPTS, first_delay=0.0, max_delay=0.0),
        sleep=lambda seconds: None,
    )


@pytest.fixture()
def client(ncmec: FakeCyberTipline) -> Iterator[CyberTiplineClient]:
    with make_client(ncmec.url) as c:
        yield c


class Store:
    """The caller's storage: every journal the client saved, as JSON."""

    def __init__(self, crash_when: Callable[[Journal], bool] | None = None) -> None:
        self.saved: list[str] = []
        self.crash_when = crash_when

    def __call__(self, journal: Journal) -> None:
        self.saved.append(journal.to_json())
        if self.crash_when is not None and self.crash_when(journal):
            raise Crash

    def last(self) -> Journal:
        return Journal.from_json(self.saved[-1])


def endpoints(ncmec: FakeCyberTipline) -> list[str]:
    return [e for e, _ in ncmec.calls]


# ----------------------------------------------------------------- the whole flow


def test_a_report_with_two_pictures_is_filed(
    ncmec: FakeCyberTipline, client: CyberTiplineClient
) -> None:
    r = report()
    journal, store = Journal(), Store()
    report_id = client.send(r, journal, save=store)

    assert endpoints(ncmec) == ["submit", "upload", "fileinfo", "upload", "fileinfo", "finish"]
    filed = ncmec.reports[report_id]
    assert filed.state == "finished"
    assert filed.xml == report_xml(r)
    assert [f.md5 for f in filed.files.values()] == [f.md5 for f in r.files]
    assert [f.data for f in filed.files.values()] == [f.content for f in r.files]
    assert [f.name for f in filed.files.values()] == ["upload-1.jpg", "upload-2.png"]
    for stored, file in zip(filed.files.values(), r.files, strict=True):
        details = etree.fromstring(stored.details or b"")
        assert details.findtext("reportId") == str(report_id)
        assert details.findtext("fileId") == stored.file_id
        assert details.findtext("industryClassification") == file.industry_classification
        assert details.findtext("fileViewedByEsp") == ("true" if file.viewed_by_esp else "false")

    assert journal.phase is Phase.FINISHED and journal.filed and journal.report_id == report_id
    assert journal.filed_file_ids == list(filed.files)
    assert [f.stage for f in journal.files] == [FileStage.DESCRIBED, FileStage.DESCRIBED]
    assert [f.md5 for f in journal.files] == [f.md5 for f in r.files]
    assert journal.base_url == ncmec.url
    assert store.last() == journal
    phases = [Journal.from_json(s).phase for s in store.saved]
    assert phases[0] is Phase.SUBMITTING  # saved before the submit was sent
    assert phases[-1] is Phase.FINISHED

    # A filed report's journal is done: sending it again asks nothing of NCMEC.
    assert client.send(r, Journal.from_json(journal.to_json())) == report_id
    assert len(ncmec.calls) == 6


def test_status_checks_the_credentials(ncmec: FakeCyberTipline, client: CyberTiplineClient) -> None:
    assert client.status().ok
    with make_client(ncmec.url, password="wrong") as bad, pytest.raises(CyberTiplineAuthError) as e:
        bad.status()
    assert e.value.response_code == 2000 and e.value.http_status == 401


def test_bad_credentials_send_nothing(ncmec: FakeCyberTipline) -> None:
    journal = Journal()
    with make_client(ncmec.url, password="wrong") as bad, pytest.raises(CyberTiplineAuthError):
        bad.send(report(), journal)
    assert journal.phase is Phase.NEW and journal.report_id is None
    assert ncmec.reports == {} and ncmec.calls == []


# ----------------------------------------------------------------- submit


def test_server_error_on_submit_leaves_nothing_to_retract(
    ncmec: FakeCyberTipline, client: CyberTiplineClient
) -> None:
    ncmec.fail("submit", "error")
    journal, store = Journal(), Store()
    with pytest.raises(CyberTiplineServerError) as e:
        client.send(report(), journal, save=store)
    assert e.value.response_code == 1000
    assert endpoints(ncmec) == ["submit"]  # not retried, nothing retracted
    assert journal.phase is Phase.NEW and ncmec.reports == {}
    assert store.last().phase is Phase.NEW

    # The stored journal is safe to send again later.
    report_id = client.send(report(), store.last(), save=store)
    assert ncmec.count("submit") == 2 and list(ncmec.reports) == [report_id]


def test_no_connection_on_submit_is_retried(ncmec: FakeCyberTipline) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    journal = Journal()
    with (
        make_client(f"http://127.0.0.1:{port}/ispws") as nowhere,
        pytest.raises(CyberTiplineUnavailable) as e,
    ):
        nowhere.send(report(), journal)
    assert e.value.maybe_sent is False
    assert journal.phase is Phase.NEW
    assert sum(1 for ev in journal.events if ev.step == "submit") == 2  # sending, not sent


def test_a_dropped_connection_on_submit_is_never_a_reason_to_resubmit(
    ncmec: FakeCyberTipline,
) -> None:
    ncmec.fail("submit", "drop_before")  # NCMEC did nothing, but the client cannot know that
    journal = Journal()
    with make_client(ncmec.url) as c, pytest.raises(SubmitOutcomeUnknown):
        c.send(report(), journal)
    assert ncmec.count("submit") == 1  # a dropped connection is never a reason to resubmit


def test_lost_answer_to_submit_is_never_resubmitted(
    ncmec: FakeCyberTipline, client: CyberTiplineClient
) -> None:
    ncmec.fail("submit", "drop")  # NCMEC opens the report; the answer never arrives
    journal, store = Journal(), Store()
    with pytest.raises(SubmitOutcomeUnknown, match="not submitted again automatically"):
        client.send(report(), journal, save=store)
    assert journal.phase is Phase.SUBMIT_UNKNOWN and journal.report_id is None
    assert store.last().phase is Phase.SUBMIT_UNKNOWN
    assert ncmec.count("submit") == 1
    (opened,) = ncmec.reports.values()
    assert opened.state == "open"

    # Running again, from memory or from storage, contacts NCMEC not at all.
    for j in (journal, store.last()):
        with pytest.raises(SubmitOutcomeUnknown):
            client.send(report(), j, save=store)
    assert ncmec.count("submit") == 1 and len(ncmec.calls) == 1

    # A person asks NCMEC, learns the report id, and the report is completed.
    resumed = store.last()
    resumed.resolve_unknown_submit(opened.report_id, by="analyst 7")
    assert client.send(report(), resumed, save=store) == opened.report_id
    assert ncmec.count("submit") == 1 and opened.state == "finished" and len(opened.files) == 2
    assert any("analyst 7" in ev.detail for ev in resumed.events)


def test_lost_submit_resolved_as_never_opened_submits_once_more(
    ncmec: FakeCyberTipline, client: CyberTiplineClient
) -> None:
    ncmec.fail("submit", "drop")
    journal = Journal()
    with pytest.raises(SubmitOutcomeUnknown):
        client.send(report(), journal)
    (orphan,) = ncmec.reports
    ncmec.expire(orphan)  # unfinished reports are deleted by NCMEC
    journal.resolve_unknown_submit(None, by="analyst 7")
    report_id = client.send(report(), journal)
    assert report_id != orphan and ncmec.count("submit") == 2
    assert [r.state for r in ncmec.reports.values()] == ["finished"]
    with pytest.raises(InvalidValue, match="not 'submit_unknown'"):
        journal.resolve_unknown_submit(None, by="analyst 7")


def test_slow_answer_to_submit_is_an_unknown_outcome(ncmec: FakeCyberTipline) -> None:
    ncmec.fail("submit", "slow", delay=1.5)
    journal = Journal()
    with make_client(ncmec.url, timeout=0.5) as c, pytest.raises(SubmitOutcomeUnknown):
        c.send(report(), journal)
    assert journal.phase is Phase.SUBMIT_UNKNOWN and ncmec.count("submit") == 1
    assert [r.state for r in ncmec.reports.values()] == ["open"]


def test_a_report_the_schema_rejects_is_never_sent(
    ncmec: FakeCyberTipline, client: CyberTiplineClient
) -> None:
    wrong_order = report_xml(report()).replace(b"<reporter>", b"<reporterX>")  # not valid
    with pytest.raises(CyberTiplineRejected) as e:
        client.submit(wrong_order)
    assert e.value.response_code == 4110  # not even well formed now
    root = etree.fromstring(report_xml(report()))
    root.find("incidentSummary").addprevious(root.find("reporter"))  # type: ignore[union-attr,arg-type]
    with pytest.raises(CyberTiplineRejected) as e:
        client.submit(etree.tostring(root))
    assert e.value.response_code == 4100 and "reporter" in (e.value.description or "")
    assert ncmec.reports == {}


# ----------------------------------------------------------------- upload and fileinfo


def test_failure_on_upload_2_retracts_the_report(
    ncmec: FakeCyberTipline, client: CyberTiplineClient
) -> None:
    ncmec.fail("upload", "error", nth=2, times=100)
    journal, store = Journal(), Store()
    with pytest.raises(CyberTiplineServerError):
        client.send(report(), journal, save=store)
    assert endpoints(ncmec) == ["submit", "upload", "fileinfo", *["upload"] * ATTEMPTS, "retract"]
    (retracted,) = ncmec.reports.values()
    assert retracted.state == "retracted" and len(retracted.files) == 1
    assert journal.phase is Phase.RETRACTED and store.last().phase is Phase.RETRACTED
    assert "Server error" in (journal.error or "")
    assert [f.stage for f in journal.files] == [FileStage.DESCRIBED, FileStage.PENDING]
    with pytest.raises(ReportClosed, match="start a new journal"):
        client.send(report(), journal)
    assert ncmec.count("submit") == 1


def test_one_server_error_on_upload_is_retried(
    ncmec: FakeCyberTipline, client: CyberTiplineClient
) -> None:
    ncmec.fail("upload", "error", nth=2)
    report_id = client.send(report(), Journal())
    assert ncmec.count("upload") == 3
    assert len(ncmec.reports[report_id].files) == 2  # NCMEC stored nothing the failed time


def test_lost_answer_to_an_upload_retracts_rather_than_upload_twice(
    ncmec: FakeCyberTipline, client: CyberTiplineClient
) -> None:
    ncmec.fail("upload", "drop", nth=2)
    journal = Journal()
    with pytest.raises(CyberTiplineUnavailable):
        client.send(report(), journal)
    assert ncmec.count("upload") == 2
    (r,) = ncmec.reports.values()
    assert r.state == "retracted" and len(r.files) == 2  # the second one did arrive
    assert journal.phase is Phase.RETRACTED
    assert journal.files[1].stage is FileStage.UPLOADING


def test_lost_answers_to_fileinfo_and_finish_are_retried(
    ncmec: FakeCyberTipline, client: CyberTiplineClient
) -> None:
    ncmec.fail("fileinfo", "drop", nth=1)
    ncmec.fail("finish", "drop", nth=1)  # finished, answer lost: retried, answered 5102
    journal = Journal()
    report_id = client.send(report(), journal)
    assert ncmec.count("fileinfo") == 3 and ncmec.count("finish") == 2
    assert ncmec.reports[report_id].state == "finished"
    assert journal.phase is Phase.FINISHED
    assert any("already finished" in ev.detail for ev in journal.events)


def test_slow_finish_is_retried_and_taken_as_done(ncmec: FakeCyberTipline) -> None:
    ncmec.fail("finish", "slow", delay=1.5)
    journal = Journal()
    with make_client(ncmec.url, timeout=0.5) as c:
        report_id = c.send(report(), journal)
    assert ncmec.reports[report_id].state == "finished"
    assert journal.phase is Phase.FINISHED and ncmec.count("finish") == 2


@pytest.mark.parametrize("fault", ["drop_before", "error"])
def test_a_finish_that_keeps_failing_is_left_to_resume(ncmec: FakeCyberTipline, fault: str) -> None:
    ncmec.fail("finish", fault, times=ATTEMPTS)
    journal, store = Journal(), Store()
    with make_client(ncmec.url) as c:
        with pytest.raises((CyberTiplineUnavailable, CyberTiplineServerError)):
            c.send(report(), journal, save=store)
        assert journal.phase is Phase.FINISHING and ncmec.count("retract") == 0
        report_id = c.send(report(), store.last(), save=store)
    assert ncmec.reports[report_id].state == "finished" and store.last().filed


# ----------------------------------------------------------------- crashes and resuming


def test_resume_after_a_crash_between_fileinfo_and_finish(ncmec: FakeCyberTipline) -> None:
    def after_last_fileinfo(j: Journal) -> bool:
        return j.phase is Phase.OPEN and all(f.stage is FileStage.DESCRIBED for f in j.files)

    store = Store(crash_when=after_last_fileinfo)
    with make_client(ncmec.url) as c, pytest.raises(Crash):
        c.send(report(), Journal(), save=store)
    assert endpoints(ncmec) == ["submit", "upload", "fileinfo", "upload", "fileinfo"]

    stored = store.last()  # what survived the crash
    store.crash_when = None
    with make_client(ncmec.url) as again:  # a new process
        report_id = again.send(report(), stored, save=store)
    assert endpoints(ncmec) == ["submit", "upload", "fileinfo", "upload", "fileinfo", "finish"]
    assert ncmec.reports[report_id].state == "finished" and len(ncmec.reports) == 1
    assert store.last().filed


def test_resume_after_a_crash_while_finishing(ncmec: FakeCyberTipline) -> None:
    store = Store(crash_when=lambda j: j.phase is Phase.FINISHING)
    with make_client(ncmec.url) as c, pytest.raises(Crash):
        c.send(report(), Journal(), save=store)
    store.crash_when = None
    with make_client(ncmec.url) as again:
        again.send(report(), store.last(), save=store)
    assert ncmec.count("submit") == 1 and ncmec.count("finish") == 1


def test_resume_after_a_crash_during_an_upload_retracts(ncmec: FakeCyberTipline) -> None:
    def second_upload_in_flight(j: Journal) -> bool:
        return j.files[1].stage is FileStage.UPLOADING

    store = Store(crash_when=second_upload_in_flight)
    with make_client(ncmec.url) as c, pytest.raises(Crash):
        c.send(report(), Journal(), save=store)
    store.crash_when = None
    with (
        make_client(ncmec.url) as again,
        pytest.raises(CyberTiplineUnavailable, match="may be in the report"),
    ):
        again.send(report(), store.last(), save=store)
    assert endpoints(ncmec) == ["submit", "upload", "fileinfo", "retract"]
    assert store.last().phase is Phase.RETRACTED


def test_an_open_report_that_expired_meanwhile(ncmec: FakeCyberTipline) -> None:
    store = Store(crash_when=lambda j: j.files[0].stage is FileStage.DESCRIBED)
    with make_client(ncmec.url) as c, pytest.raises(Crash):
        c.send(report(), Journal(), save=store)
    stored = store.last()
    assert stored.report_id is not None
    ncmec.expire(stored.report_id)  # more than an hour later
    store.crash_when = None
    with make_client(ncmec.url) as again:
        with pytest.raises(ReportNotFound):
            again.send(report(), stored, save=store)
        assert stored.phase is Phase.EXPIRED
        with pytest.raises(ReportClosed):
            again.send(report(), stored, save=store)


def test_a_journal_belongs_to_one_environment_and_one_report(
    ncmec: FakeCyberTipline, client: CyberTiplineClient
) -> None:
    journal = Journal()
    client.send(report(), journal)

    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"NCMEC contacted: {request.url}")

    with (
        CyberTiplineClient(Credentials("u", "p"), transport=httpx.MockTransport(never)) as other,
        pytest.raises(JournalMismatch, match="belongs to"),
    ):
        other.send(report(), journal)  # the test environment's URL: refused before any request
    fresh = Journal(base_url=ncmec.url, phase=Phase.OPEN, report_id=1)
    with pytest.raises(JournalMismatch, match="other files"):
        client.send(report(n_files=1), fresh)


# ----------------------------------------------------------------- NCMEC's rules, call by call


def _opened(client: CyberTiplineClient) -> int:
    answer = client.submit(report_xml(report()))
    assert answer.ok and answer.report_id is not None
    return answer.report_id


def test_finish_twice_is_refused_as_documented(client: CyberTiplineClient) -> None:
    report_id = _opened(client)
    done = client.finish(report_id)
    assert done.root == "reportDoneResponse" and done.report_id == report_id
    with pytest.raises(ReportAlreadyFinished) as e:
        client.finish(report_id)
    assert e.value.response_code == 5102 and "Report already finished" in e.value.message


def test_retract_after_finish_is_refused_as_documented(
    ncmec: FakeCyberTipline, client: CyberTiplineClient
) -> None:
    report_id = client.send(report(), Journal())
    with pytest.raises(ReportAlreadyFinished) as e:
        client.retract(report_id)
    assert e.value.response_code == 5102
    assert ncmec.reports[report_id].state == "finished"
    with pytest.raises(ReportAlreadyFinished):
        client.upload(report_id, "late.png", b"synthetic")


def test_retracted_reports_take_nothing_more(client: CyberTiplineClient) -> None:
    report_id = _opened(client)
    assert client.retract(report_id).ok
    with pytest.raises(ReportAlreadyRetracted) as e:
        client.retract(report_id)
    assert e.value.response_code == 5101
    with pytest.raises(ReportAlreadyRetracted):
        client.upload(report_id, "late.png", b"synthetic")
    with pytest.raises(ReportAlreadyRetracted):
        client.finish(report_id)


def test_nothing_before_submit_and_fileinfo_only_for_uploaded_files(
    client: CyberTiplineClient,
) -> None:
    f = report().files[0]
    with pytest.raises(ReportNotFound) as e:
        client.upload(999, f.file_name, f.content)
    assert e.value.response_code == 5001
    with pytest.raises(ReportNotFound):
        client.fileinfo(file_details_xml(999, "nope", f))
    with pytest.raises(ReportNotFound):
        client.finish(999)
    report_id = _opened(client)
    with pytest.raises(FileNotFound) as e:
        client.fileinfo(file_details_xml(report_id, "never-uploaded", f))
    assert e.value.response_code == 5002
    uploaded = client.upload(report_id, f.file_name, f.content)
    assert uploaded.hash == f.md5 and uploaded.file_id
    assert client.fileinfo(file_details_xml(report_id, uploaded.file_id, f)).ok
    with pytest.raises(CyberTiplineRejected) as e:
        client.fileinfo(file_details_xml(report_id, uploaded.file_id, f).replace(b"A1", b"Z9"))
    assert e.value.response_code == 4100


# ----------------------------------------------------------------- answers that are not NCMEC's


def _mock(status: int, body: bytes, seen: list[str] | None = None) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request.url.path)
        return httpx.Response(status, content=body)

    return httpx.MockTransport(answer)


def test_401_without_a_body_is_an_auth_error() -> None:
    c = CyberTiplineClient(Credentials("u", "p"), transport=_mock(401, b""))
    with pytest.raises(CyberTiplineAuthError, match="HTTP 401"):
        c.status()


def test_a_proxy_error_page_after_submit_is_an_unknown_outcome() -> None:
    seen: list[str] = []
    c = CyberTiplineClient(
        Credentials("u", "p"),
        transport=_mock(502, b"<html>Bad Gateway</html>", seen),
        retry=RetryPolicy(attempts=3, first_delay=0, max_delay=0),
        sleep=lambda s: None,
    )
    journal = Journal()
    with pytest.raises(SubmitOutcomeUnknown):
        c.send(report(), journal)
    assert seen == ["/ispws/submit"] and journal.phase is Phase.SUBMIT_UNKNOWN


# ----------------------------------------------------------------- configuration


def test_configuration_from_the_environment(tmp_path: object) -> None:
    env = {"SAFEHOLD_NCMEC_USERNAME": "usr123", "SAFEHOLD_NCMEC_PASSWORD": "pswd123"}
    with CyberTiplineClient.from_env(env) as c:
        assert c.base_url == TEST_URL  # test unless production is asked for
    with CyberTiplineClient.from_env({**env, "SAFEHOLD_NCMEC_ENVIRONMENT": "production"}) as c:
        assert c.base_url == PRODUCTION_URL
    with pytest.raises(InvalidValue, match="'test' or 'production'"):
        CyberTiplineClient.from_env({**env, "SAFEHOLD_NCMEC_ENVIRONMENT": "prod"})
    with pytest.raises(InvalidValue, match="SAFEHOLD_NCMEC_USERNAME"):
        CyberTiplineClient.from_env({})
    with pytest.raises(InvalidValue, match="https://"):
        CyberTiplineClient.from_env(
            {**env, "SAFEHOLD_NCMEC_BASE_URL": "http://report.cybertip.org/ispws"}
        )

    from pathlib import Path

    secret = Path(str(tmp_path)) / "password"
    secret.write_text("from-a-file\n")
    creds = Credentials.from_env(
        {"SAFEHOLD_NCMEC_USERNAME": "u", "SAFEHOLD_NCMEC_PASSWORD_FILE": str(secret)}
    )
    assert creds.password == "from-a-file"
    assert "from-a-file" not in repr(creds)
    with pytest.raises(InvalidValue, match="':'"):
        Credentials("a:b", "p")
