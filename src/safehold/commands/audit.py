"""`safehold audit` commands: list the audit log and verify its hash chain."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from safehold.commands.common import JsonOpt, _db, _emit, _errors, _printable, err, out
from safehold.errors import InvalidValue

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(as_json: JsonOpt = False) -> None:
    """Recompute the SHA-256 chain. Exit 0 when intact, 1 with the first bad entry."""
    from safehold.audit import AuditLog

    with _errors(as_json):
        result = AuditLog(_db()).verify()
    if as_json:
        _emit(result.to_dict())
    elif result.ok:
        err.print(f"audit log intact: {result.checked} entries, last hash {result.last_hash}")
    else:
        err.print(f"audit log BROKEN at entry {result.bad_id}: {result.reason}")
        err.print(f"({result.checked} entries before it check out)")
    raise typer.Exit(0 if result.ok else 1)


@audit_app.command("list")
def audit_list(
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="Entries to show (newest first).")
    ] = 50,
    obj: Annotated[
        str | None, typer.Option("--object", help="Only entries about TYPE:ID, e.g. case:12.")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="e.g. user:alice")] = None,
    action: Annotated[str | None, typer.Option("--action", help="e.g. decide")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    before: Annotated[int | None, typer.Option("--before", help="Entries before this id.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List audit entries, newest first."""
    from safehold.audit import AuditLog

    with _errors(as_json):
        object_type = object_id = None
        if obj is not None:
            object_type, sep, rest = obj.partition(":")
            if not object_type:
                raise InvalidValue("--object takes TYPE or TYPE:ID, e.g. case:12")
            object_id = rest if sep and rest else None
        if not 1 <= limit <= 1000:
            raise InvalidValue("--limit must be between 1 and 1000")
        entries = AuditLog(_db()).list(
            tenant=tenant,
            object_type=object_type,
            object_id=object_id,
            actor=actor,
            action=action,
            limit=limit,
            before_id=before,
        )
        if as_json:
            for e in entries:
                _emit(e.to_dict())
            return
        if not entries:
            err.print("no audit entries match")
            return
        table = Table(header_style="bold")
        for col in ("id", "at (UTC)", "tenant", "actor", "action", "object", "details"):
            table.add_column(col, overflow="fold", no_wrap=col in ("id", "at (UTC)", "action"))
        for e in entries:
            table.add_row(
                str(e.id),
                e.at.strftime("%Y-%m-%d %H:%M:%S"),
                _printable(e.tenant),
                _printable(e.actor),
                e.action,
                _printable(e.object or ""),
                _printable(json.dumps(e.details, ensure_ascii=False)) if e.details else "",
            )
        out.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``audit`` group to the main app."""
    app.add_typer(audit_app, name="audit")
