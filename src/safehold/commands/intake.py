"""`safehold reports`, `safehold notices`, `safehold hosts` and `safehold blocklist`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from safehold.commands.common import JsonOpt, _db, _emit, _errors, _printable, _who, err, out

reports_app = typer.Typer(help="Reports from the public and partners.", no_args_is_help=True)
notices_app = typer.Typer(help="Takedown and blocking notices.", no_args_is_help=True)
hosts_app = typer.Typer(
    help="Whom notices go to: hosting providers by domain.", no_args_is_help=True
)

TenantOpt = Annotated[str, typer.Option("--tenant", help="The hotline's tenant.")]


def _when(value: object) -> str:
    from datetime import datetime

    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else "-"


def _service() -> Any:
    from safehold.web.service import Service

    return Service.open(_db())


# --------------------------------------------------------------------------- reports


@reports_app.command("list")
def reports_list(
    kind: Annotated[str | None, typer.Option("--kind", help="report or hashes.")] = None,
    category: Annotated[str | None, typer.Option("--category", help="Only this category.")] = None,
    flag: Annotated[
        str | None, typer.Option("--flag", help="duplicate, reported_before or spam.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    before: Annotated[int | None, typer.Option("--before", help="Only ids below (paging).")] = None,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """List reports, newest first (never their contact details)."""
    with _errors(as_json):
        svc = _service()
        items, more = svc.reports.list(
            tenant, kind=kind, category=category, flag=flag, limit=limit, before=before
        )
        if as_json:
            rows = [{k: v for k, v in i.to_dict().items() if k != "contact"} for i in items]
            _emit({"reports": rows, "next_before": more})
            return
        if not items:
            err.print("no reports match")
            return
        table = Table(header_style="bold")
        for col in (
            "id",
            "number",
            "kind",
            "category",
            "case",
            "urls",
            "files",
            "flags",
            "received",
        ):
            table.add_column(col, overflow="fold")
        for i in items:
            table.add_row(
                str(i.id),
                i.display_number,
                i.kind,
                i.category,
                str(i.case_id or "-"),
                str(len(i.urls)),
                str(i.files or i.hashes),
                " ".join(i.flags) or "-",
                _when(i.created_at) + (" (withdrawn)" if i.withdrawn_at else ""),
            )
        out.print(table)
        if more:
            err.print(f"more: --before {more}")


@reports_app.command("show")
def reports_show(
    number: Annotated[str, typer.Argument(help="The report number (R-XXXX-XXXX).")],
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Show one report, with its URLs, messages and contact details (audited)."""
    with _errors(as_json):
        svc = _service()
        info = svc.reports.by_number(number, tenant)
        svc.audit.append(
            _who(), "view_case", object_type="report", object_id=info.display_number, tenant=tenant
        )
        if as_json:
            _emit(info.to_dict())
            return
        out.print(f"report {info.display_number} ({info.kind}) · case {info.case_id or '-'}")
        out.print(f"  category {info.category} · source {info.source} · status {info.status}")
        out.print(f"  received {_when(info.created_at)} · flags {' '.join(info.flags) or '-'}")
        if info.platform or info.username:
            out.print(f"  where: {_printable(info.platform)} {_printable(info.username)}")
        if info.description:
            out.print(f"  description: {_printable(info.description)}")
        for k, v in info.demographics.items():
            out.print(f"  {k}: {v}")
        if info.contact:
            out.print(
                "  contact: " + _printable(", ".join(f"{k} {v}" for k, v in info.contact.items()))
            )
        for u in info.urls:
            out.print(f"  url {_printable(u.canonical)} (host {u.host}, domain {u.domain})")
        for m in info.messages:
            out.print(f"  {m.direction} {_when(m.at)}: {_printable(m.body)}")


@reports_app.command("summary")
def reports_summary(tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Complaints per stage, overdue, median time per stage and outcomes."""
    with _errors(as_json):
        summary = _service().complaints.summary(tenant)
        if as_json:
            _emit(summary.to_dict())
            return
        for stage, n in summary.open_by_stage.items():
            median = summary.median_seconds.get(stage)
            shown = f"{median / 3600:.1f} h" if median is not None else "-"
            out.print(f"{stage}: {n} open · median time in stage {shown}")
        out.print(f"overdue: {summary.overdue}")
        for outcome, n in summary.resolved_by_outcome.items():
            out.print(f"resolved {outcome}: {n}")


# --------------------------------------------------------------------------- notices


@notices_app.command("list")
def notices_list(
    kind: Annotated[str | None, typer.Option("--kind", help="takedown or block.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="draft, queued, sent, removed, cancelled.")
    ] = None,
    due: Annotated[
        bool, typer.Option("--due", help="Only sent notices whose recheck is due.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 100,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """List notices, newest first (``--due``: oldest due recheck first)."""
    with _errors(as_json):
        items, more = _service().notices.list(
            tenant, kind=kind, status=status, due=due, limit=limit
        )
        if as_json:
            _emit({"notices": [n.to_dict() for n in items], "next_before": more})
            return
        if not items:
            err.print("no notices match")
            return
        table = Table(header_style="bold")
        for col in ("id", "case", "kind", "status", "url", "to", "sent", "next check", "checks"):
            table.add_column(col, overflow="fold")
        for n in items:
            table.add_row(
                str(n.id),
                str(n.case_id or "-"),
                n.kind + ("/host" if n.scope == "host" else ""),
                n.status,
                _printable(n.url),
                _printable(n.recipient_email or "-"),
                _when(n.sent_at),
                _when(n.next_check_at) + (" DUE" if n.check_due else ""),
                str(n.checks),
            )
        out.print(table)


@notices_app.command("recheck")
def notices_recheck(
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Recheck every sent notice that is due, now: a HEAD request to the URL (the content
    is never downloaded); 404, 410 and 451 confirm removal."""
    from safehold.intake.notices import check_url

    with _errors(as_json):
        svc = _service()
        due = svc.notices.due(limit=limit)
        results = []
        for n in due:
            result = check_url(n.url)
            after = svc.notices.record_check(n.id, "system:recheck", result=result, tenant=n.tenant)
            results.append({"id": n.id, "url": n.url, "result": result, "status": after.status})
            if not as_json:
                out.print(f"notice {n.id}: {_printable(n.url)} → {result} ({after.status})")
        if as_json:
            _emit({"checked": results})
        elif not due:
            err.print("no rechecks are due")


# --------------------------------------------------------------------------- hosts


@hosts_app.command("list")
def hosts_list(tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """The host contacts, by domain."""
    with _errors(as_json):
        items = _service().contacts.list(tenant)
        if as_json:
            _emit({"hosts": [c.to_dict() for c in items]})
            return
        if not items:
            err.print("no host contacts yet (safehold hosts add DOMAIN --email ...)")
            return
        table = Table(header_style="bold")
        for col in ("domain", "name", "email", "abuse form", "jurisdiction"):
            table.add_column(col, overflow="fold")
        for c in items:
            table.add_row(
                c.domain,
                _printable(c.name),
                _printable(c.email),
                _printable(c.abuse_url or "-"),
                c.jurisdiction,
            )
        out.print(table)


@hosts_app.command("add")
def hosts_add(
    domain: Annotated[str, typer.Argument(help="The domain (e.g. example-hosting.com).")],
    name: Annotated[str, typer.Option("--name")] = "",
    email: Annotated[str, typer.Option("--email", help="Where takedown notices go.")] = "",
    abuse_url: Annotated[str, typer.Option("--abuse-url", help="The host's abuse form.")] = "",
    jurisdiction: Annotated[str, typer.Option("--jurisdiction")] = "default",
    notes: Annotated[str, typer.Option("--notes")] = "",
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Add or replace the contact for a domain."""
    with _errors(as_json):
        info = _service().contacts.put(
            tenant,
            domain=domain,
            name=name,
            email=email,
            abuse_url=abuse_url,
            jurisdiction=jurisdiction,
            notes=notes,
            by=_who(),
        )
        if as_json:
            _emit(info.to_dict())
        else:
            out.print(f"contact for {info.domain} saved")


@hosts_app.command("import")
def hosts_import(
    path: Annotated[
        Path,
        typer.Argument(help="CSV: domain,name,email,abuse_url,jurisdiction,notes ('-': stdin)."),
    ],
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Import host contacts from CSV: every row is checked first; a bad row changes nothing."""
    with _errors(as_json):
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        n = _service().contacts.import_csv(tenant, text, by=_who())
        if as_json:
            _emit({"imported": n})
        else:
            out.print(f"{n} host contacts imported")


@hosts_app.command("remove")
def hosts_remove(
    domain: Annotated[str, typer.Argument()],
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Remove the contact for a domain."""
    with _errors(as_json):
        removed = _service().contacts.delete(tenant, domain, by=_who())
        if as_json:
            _emit({"removed": removed})
        else:
            out.print(f"removed {domain}" if removed else f"no contact for {domain}")


# --------------------------------------------------------------------------- block list


def blocklist_command(
    fmt: Annotated[str, typer.Option("--format", "-f", help="plain, rpz or json.")] = "plain",
    zone: Annotated[
        str, typer.Option("--zone", help="The RPZ zone's name.")
    ] = "rpz.safehold.invalid",
    include_url_hosts: Annotated[
        bool,
        typer.Option(
            "--include-url-hosts",
            help="RPZ: also block the whole host of URL blocks (may block far more).",
        ),
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file.")
    ] = None,
    tenant: TenantOpt = "default",
) -> None:
    """Export the URL block list for network operators (audited)."""
    from safehold.audit import AuditLog
    from safehold.intake import blocklist

    with _errors(False):
        db = _db()
        text = blocklist.export(db, tenant, fmt, zone=zone, include_url_hosts=include_url_hosts)
        AuditLog(db).append(_who(), "export", object_type="blocklist", object_id=fmt, tenant=tenant)
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
            err.print(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(reports_app, name="reports")
    app.add_typer(notices_app, name="notices")
    app.add_typer(hosts_app, name="hosts")
    app.command("blocklist")(blocklist_command)
