"""``safehold rules``: validate, load, show, list, activate, hits, test (with and
without --json), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from safehold.cli import app as cli
from safehold.rules import Context, RuleSets
from safehold.store import Database
from safehold.store.models import Event

RUNNER = CliRunner()

GOOD = """\
mode: first-match
rules:
  - name: known-csam
    priority: 10
    when: {match: {labels: [csam]}}
    actions: [block, {review: {queue: csam, sla: 4h}}]
  - name: many-reports
    shadow: true
    when: {reports: {min: 2}}
    actions: [hold]
"""
BAD = """\
rules:
  - name: known-csam
    when: {match: {lables: [csam]}}
    actions: [block, {review: {queue: csam, sla: soon}}]
"""


def run(db_url: str, *args: str) -> Any:
    result = RUNNER.invoke(cli, ["--db", db_url, "rules", *args])
    assert "Traceback" not in result.output, result.output
    return result


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(BAD)
    return good, bad


def test_validate(files: tuple[Path, Path], sqlite_url: str) -> None:
    good, bad = files
    r = run(sqlite_url, "validate", str(good))
    assert r.exit_code == 0, r.output
    assert "valid, 2 rules (1 shadow), mode first-match, default allow" in r.stderr

    r = run(sqlite_url, "validate", str(bad))
    assert r.exit_code == 1
    lines = r.stderr.splitlines()
    assert lines[0].startswith(f"{bad}:3:20: unknown key 'lables'")
    assert "did you mean 'labels'?" in lines[0]
    assert lines[1].startswith(f"{bad}:4:50: ") and "not a duration" in lines[1]
    assert lines[2] == "2 problems; nothing was stored"

    r = run(sqlite_url, "validate", str(bad), "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert out["valid"] is False and out["error"]["code"] == "invalid_rules"
    assert [(p["line"], p["column"]) for p in out["error"]["problems"]] == [(3, 20), (4, 50)]
    out = json.loads(run(sqlite_url, "validate", str(good), "--json").stdout)
    assert out["valid"] is True and [r["name"] for r in out["rules"]] == [
        "known-csam",
        "many-reports",
    ]
    r = run(sqlite_url, "validate", str(good.parent / "missing.yaml"))
    assert r.exit_code == 2 and "cannot read" in r.stderr


def test_load_show_list_activate_hits(files: tuple[Path, Path], db_url: str) -> None:
    good, bad = files
    r = run(db_url, "load", str(bad))
    assert r.exit_code == 1 and "nothing was stored" in r.stderr
    r = run(db_url, "list")
    assert r.exit_code == 0 and "no stored rules" in r.stderr

    r = run(db_url, "load", str(good), "--note", "first policy")
    assert r.exit_code == 0, r.output
    assert "version 1 (active), 2 rules" in r.stderr
    r = run(db_url, "load", str(good), "--no-activate", "--json")
    stored = json.loads(r.stdout)
    assert (stored["version"], stored["active"], stored["builtin"]) == (2, False, False)
    assert stored["created_by"].startswith("cli:")

    r = run(db_url, "show")
    assert r.exit_code == 0
    assert "version 1 (active)" in r.stdout and "first policy" in r.stdout
    assert "known-csam" in r.stdout and "many-reports (shadow)" in r.stdout
    assert "  when: {match: {labels: [csam]}}" in r.stdout  # the source
    shown = json.loads(run(db_url, "show", "--version", "2", "--json").stdout)
    assert shown["source"] == GOOD and shown["active"] is False

    listed = json.loads(run(db_url, "list", "--json").stdout)
    assert [(v["version"], v["active"]) for v in listed["versions"]] == [(2, False), (1, True)]
    assert "first policy" in run(db_url, "list").stdout

    r = run(db_url, "activate", "2")
    assert r.exit_code == 0 and "version 2 is active" in r.stderr
    r = run(db_url, "activate", "9")
    assert r.exit_code == 2 and "versions: 1, 2" in r.stderr
    r = run(db_url, "show", "--version", "9", "--json")
    assert r.exit_code == 2 and json.loads(r.stdout)["error"]["code"] == "not_found"

    sets = RuleSets(Database(db_url))
    v2 = sets.active()
    sets.record_hits(v2.id, ["known-csam"], ["many-reports"])
    sets.record_hits(v2.id, ["known-csam"], [])
    hits = json.loads(run(db_url, "hits", "--json").stdout)
    assert hits["version"] == 2
    assert [(h["name"], h["hits"]) for h in hits["rules"]] == [
        ("known-csam", 2),
        ("many-reports", 1),
    ]
    table = run(db_url, "hits", "--version", "1").stdout
    assert "version 1 (inactive)" in table and "known-csam" in table

    r = run(db_url, "activate", "0")
    assert r.exit_code == 0
    assert "built-in rules" in run(db_url, "show").stdout
    assert "not counted" in run(db_url, "hits").stderr


def test_test_replays_recent_events(files: tuple[Path, Path], db_url: str) -> None:
    good, bad = files
    db = Database(db_url)
    match = {"bank": "b", "entry_id": 1, "labels": ["A1"], "source": "local", "distance": 0}
    with db.session() as s:
        for ctx, decision in [
            (Context(content_id="a", matches=[match]), "allow"),
            (Context(content_id="b", reports=3), "allow"),
            (Context(content_id="c"), "allow"),
        ]:
            s.add(Event(context=ctx.to_json(), decision=decision, content_id=ctx.content_id))
    r = run(db_url, "test", str(good), "--against", "recent", "--since", "24h", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["events"] == 3
    assert report["fired"] == {"known-csam": 1}
    assert report["shadow"] == {"many-reports": 1}
    assert report["changes"] == {"allow -> block": 1}

    r = run(db_url, "test", str(good), "--limit", "2")
    assert r.exit_code == 0
    assert "replayed 2 recent events" in r.stdout
    r = run(db_url, "test", str(good))
    assert "allow -> block: 1" in r.stdout and "known-csam" in r.stdout

    assert run(db_url, "test", str(bad)).exit_code == 1
    r = run(db_url, "test", str(good), "--against", "yesterday")
    assert r.exit_code == 2 and "--against must be 'recent'" in r.stderr
    r = run(db_url, "test", str(good), "--since", "a while")
    assert r.exit_code == 2 and "not a duration" in r.stderr
