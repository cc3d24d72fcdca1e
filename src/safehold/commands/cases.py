"""`safehold cases` commands: list and show cases and queue counts."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from safehold.commands.common import JsonOpt, _db, _emit, _errors, _printable, _who, err, out

cases_app = typer.Typer(help="Review cases: queues, lists, details.", no_args_is_help=True)

TenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant whose cases to show.")]


def _when(value: object) -> str:
    from datetime import datetime

    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else "-"


@cases_app.command("list")
def cases_list(
    queue: Annotated[str | None, typer.Option("--queue", help="Only this queue.")] = None,
    state: Annotated[
        str | None,
        typer.Option("--state", help="open, new, in_review, decided, actioned, referred, closed."),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Only cases with this label.")
    ] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only cases past their SLA.")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="next_cursor of a page.")] = None,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """List cases, most urgent first (priority, then SLA due time)."""
    from safehold.audit import AuditLog
    from safehold.cases import Cases

    with _errors(as_json):
        db = _db()
        page = Cases(db, AuditLog(db)).list_cases(
            tenant,
            queue=queue,
            state=state,
            label=label,
            overdue=True if overdue else None,
            limit=limit,
            cursor=cursor,
        )
        if as_json:
            _emit(page.to_dict())
            return
        if not page.cases:
            err.print("no cases match")
            return
        table = Table(header_style="bold")
        for col in (
            "id",
            "queue",
            "state",
            "prio",
            "labels",
            "items",
            "account",
            "assignee",
            "SLA due (UTC)",
        ):
            table.add_column(col, overflow="fold")
        for c in page.cases:
            table.add_row(
                str(c.id),
                c.queue,
                c.state,
                str(c.priority),
                " ".join(c.labels),
                str(c.items),
                _printable(c.account_id or "-"),
                _printable(c.assignee or "-"),
                _when(c.sla_due_at) + (" OVERDUE" if c.overdue else ""),
            )
        out.print(table)
        if page.next_cursor:
            err.print(f"more: --cursor {page.next_cursor}")


@cases_app.command("queues")
def cases_queues(tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Open cases per queue: new, in review, awaiting a second person, overdue."""
    from safehold.audit import AuditLog
    from safehold.cases import Cases

    with _errors(as_json):
        db = _db()
        counts = Cases(db, AuditLog(db)).queue_counts(tenant)
        if as_json:
            _emit({"queues": [q.to_dict() for q in counts]})
            return
        if not counts:
            err.print("no cases yet")
            return
        table = Table(header_style="bold")
        for col in ("queue", "new", "in review", "decided", "open", "overdue", "next due (UTC)"):
            table.add_column(col)
        for q in counts:
            table.add_row(
                q.queue,
                str(q.new),
                str(q.in_review),
                str(q.decided),
                str(q.open),
                str(q.overdue),
                _when(q.next_due),
            )
        out.print(table)


@cases_app.command("show")
def cases_show(
    case_id: Annotated[int, typer.Argument(help="The case id.")],
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Show a case: items, matches, decisions, comments (recorded as view_case)."""
    from safehold.audit import AuditLog
    from safehold.cases import Cases

    with _errors(as_json):
        db = _db()
        audit = AuditLog(db)
        view = Cases(db, audit).get(case_id, tenant)
        audit.append(_who(), "view_case", object_type="case", object_id=str(case_id), tenant=tenant)
        if as_json:
            _emit(view.to_dict())
            return
        c = view.case
        out.print(f"case {c.id}: {_printable(c.title)}")
        out.print(
            f"  queue {c.queue} · state {c.state} · priority {c.priority} · "
            f"labels {' '.join(c.labels) or '-'}"
        )
        account, assignee = _printable(c.account_id or "-"), _printable(c.assignee or "-")
        out.print(
            f"  account {account} · assignee {assignee} · SLA due {_when(c.sla_due_at)}"
            + (" OVERDUE" if c.overdue else "")
        )
        out.print(f"  opened {_when(c.created_at)} · updated {_when(c.updated_at)}")
        for item in view.items:
            out.print(
                f"item {item.id}: content {_printable(item.content_id or '-')} · "
                f"{item.media_kind or 'no stored media'} · sha256 {item.sha256 or '-'} · "
                f"reports {item.reports}"
            )
            for m in item.matches:
                out.print(
                    "  match "
                    + _printable(
                        ", ".join(
                            f"{k}={json.dumps(m[k], ensure_ascii=False)}"
                            for k in ("bank", "labels", "source", "signal_type", "distance")
                            if k in m
                        )
                    )
                )
        for d in view.decisions:
            extra = f" · confirmed by {d.confirmed_by}" if d.confirmed_by else ""
            out.print(
                f"decision {d.id}: {d.action} {d.label or ''} by {_printable(d.user or '-')} "
                f"({d.status}{extra}) {_printable(d.reason)}"
            )
        for cm in view.comments:
            out.print(
                f"comment by {_printable(cm.user or '-')} {_when(cm.at)}: {_printable(cm.body)}"
            )


def register(app: typer.Typer) -> None:
    """Add the ``cases`` group to the main app."""
    app.add_typer(cases_app, name="cases")
