"""`safehold user ...` and `safehold audit ...`: passwords only from standard input or a
hidden prompt, never from an argument; the audit chain verified from the command line."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text
from typer.testing import CliRunner

import safehold.access.users
from safehold.access.users import Users
from safehold.audit import AuditLog
from safehold.cli import app
from safehold.store import Database

BIN = Path(sys.executable).with_name("safehold")
COMMAND = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "safehold.cli"]
PASSWORD = "correct horse battery"
RUNNER = CliRunner()


@pytest.fixture(autouse=True)
def _cheap_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(safehold.access.users, "_hasher", cheap)


def run(db_url: str, *args: str, input: str | None = None, code: int = 0) -> str:
    result = RUNNER.invoke(app, ["--db", db_url, *args], input=input)
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    return result.output


def test_create_reads_the_first_line_of_stdin(db_url: str) -> None:
    run(db_url, "user", "create", "alice", "--role", "admin", input=PASSWORD + "\nignored\n")
    with Database(db_url) as db:
        users = Users(db, AuditLog(db))
        assert users.authenticate("alice", PASSWORD).role == "admin"
        entry = AuditLog(db).list(action="user_create")[0]
        assert entry.actor.startswith("cli:") and entry.object == "user:alice"
    out = run(db_url, "user", "list", "--json")
    assert [u["name"] for u in json.loads(out)["users"]] == ["alice"]


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("", "no password on standard input"),
        ("\n", "no password on standard input"),
        ("short\n", "too short"),
        ("alicealicealice\n", "must not be the user name"),
    ],
)
def test_create_refuses_empty_and_short_passwords(db_url: str, stdin: str, message: str) -> None:
    name = "alicealicealice" if "user name" in message else "alice"
    out = run(db_url, "user", "create", name, "--role", "admin", input=stdin, code=2)
    assert message in out
    with Database(db_url) as db:
        assert Users(db, AuditLog(db)).list() == []


def test_there_is_no_password_option(db_url: str) -> None:
    for option in ("--password", "-p", "--pass", "--passwd"):
        result = RUNNER.invoke(
            app, ["--db", db_url, "user", "create", "bob", option, PASSWORD], input=PASSWORD
        )
        assert result.exit_code == 2
        assert "No such option" in result.output
    help_text = RUNNER.invoke(app, ["user", "create", "--help"]).output
    assert "--password" not in help_text
    # a password given as an extra argument is refused, never used
    result = RUNNER.invoke(app, ["--db", db_url, "user", "create", "bob", PASSWORD], input="")
    assert result.exit_code == 2


def test_bad_names_and_roles_fail_before_reading_a_password(db_url: str) -> None:
    assert "invalid user name" in run(db_url, "user", "create", "Bob!", input="", code=2)
    assert "unknown role" in run(db_url, "user", "create", "bob", "--role", "god", input="", code=2)


def test_role_disable_passwd_and_limit(db_url: str) -> None:
    run(db_url, "user", "create", "bob", input=PASSWORD + "\n")
    assert json.loads(run(db_url, "user", "set-role", "bob", "lead", "--json"))["role"] == "lead"
    run(db_url, "user", "passwd", "bob", input="a brand new password\n")
    assert json.loads(run(db_url, "user", "set-limit", "bob", "25", "--json"))["daily_limit"] == 25
    assert "no user named" in run(db_url, "user", "disable", "nobody", code=2)
    assert json.loads(run(db_url, "user", "disable", "bob", "--json"))["disabled"] is True
    with Database(db_url) as db:
        actions = [e.action for e in AuditLog(db).list()]
    assert actions == [
        "user_disable",
        "settings_change",
        "password_change",
        "role_change",
        "user_create",
    ]


def test_audit_verify_and_list(db_url: str) -> None:
    run(db_url, "user", "create", "alice", "--role", "admin", input=PASSWORD + "\n")
    run(db_url, "user", "set-role", "alice", "lead")
    run(db_url, "user", "set-role", "alice", "admin")
    assert "intact: 3 entries" in run(db_url, "audit", "verify")
    ok = json.loads(run(db_url, "audit", "verify", "--json"))
    assert ok["ok"] is True and ok["checked"] == 3
    lines = run(db_url, "audit", "list", "--object", "user:alice", "--json").splitlines()
    assert [json.loads(line)["action"] for line in lines] == [
        "role_change",
        "role_change",
        "user_create",
    ]
    assert len(run(db_url, "audit", "list", "--limit", "1", "--json").splitlines()) == 1
    assert "role_change" in run(db_url, "audit", "list")
    with Database(db_url) as db, db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'user:mallory' WHERE id = 2"))
    broken = run(db_url, "audit", "verify", code=1)
    assert "BROKEN at entry 2" in broken
    as_json = json.loads(run(db_url, "audit", "verify", "--json", code=1))
    assert (as_json["ok"], as_json["bad_id"], as_json["checked"]) == (False, 2, 1)


def _read_until(fd: int, needle: bytes, deadline: float) -> bytes:
    seen = b""
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {needle!r}; got {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"output ended before {needle!r}; got {seen!r}"
            seen += chunk
    return seen


@pytest.mark.slow
def test_create_prompts_twice_hidden_on_a_terminal(sqlite_url: str, tmp_path: Path) -> None:
    """On a terminal the password is prompted for (echo off) and must be typed twice."""
    leader, follower = pty.openpty()
    env = {**os.environ, "SAFEHOLD_DATABASE_URL": sqlite_url}
    try:
        proc = subprocess.Popen(
            [*COMMAND, "user", "create", "tina", "--role", "admin"],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
            start_new_session=True,  # no controlling terminal: getpass uses the pty on stdin
        )
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        err = _read_until(proc.stderr.fileno(), b"Password for tina", deadline)
        time.sleep(0.2)  # getpass turns echo off (flushing input) after printing the prompt
        os.write(leader, PASSWORD.encode() + b"\n")
        err += _read_until(proc.stderr.fileno(), b"confirmation", deadline)
        time.sleep(0.2)
        os.write(leader, PASSWORD.encode() + b"\n")
        rest_out, rest_err = proc.communicate(timeout=60)
        err += rest_err
    finally:
        os.close(leader)
        os.close(follower)
    assert proc.returncode == 0, err.decode()
    # echo was off: whatever the terminal shows, the password never reaches the output
    assert PASSWORD.encode() not in err + rest_out
    with Database(sqlite_url) as db:
        assert Users(db, AuditLog(db)).authenticate("tina", PASSWORD).role == "admin"
