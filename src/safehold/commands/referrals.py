"""`safehold referrals`: list referrals to NCMEC, show one, send an approved one now."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from safehold.commands.common import JsonOpt, _db, _emit, _errors, _printable, err, out

referrals_app = typer.Typer(
    help="Referrals to NCMEC's CyberTipline (proposed and approved in the console).",
    no_args_is_help=True,
)

TenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant whose referrals to show.")]


def _service() -> Any:
    from safehold.web.service import Service

    return Service.open(_db())


@referrals_app.command("list")
def referrals_list(
    status: Annotated[
        str | None,
        typer.Option("--status", help="proposed, approved, sending, sent, failed, unknown ..."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 100,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Referrals, newest first."""
    with _errors(as_json):
        items = _service().referrals.list(tenant, status=status, limit=limit)
        if as_json:
            _emit({"referrals": [r.to_dict() for r in items]})
            return
        if not items:
            err.print("no referrals match")
            return
        table = Table(header_style="bold")
        for col in ("id", "case", "status", "NCMEC report", "proposed by", "approved by", "error"):
            table.add_column(col, overflow="fold")
        for r in items:
            table.add_row(
                str(r.id),
                str(r.case_id),
                r.status + (f" ({r.phase})" if r.phase and r.status != "sent" else ""),
                r.external_id or "-",
                _printable(r.created_by),
                _printable(r.decided_by or "-"),
                _printable((r.error or "-")[:120]),
            )
        out.print(table)


@referrals_app.command("show")
def referrals_show(
    referral_id: Annotated[int, typer.Argument(help="The referral's id.")],
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """One referral, with what was chosen and where its submission stands."""
    with _errors(as_json):
        r = _service().referrals.get(referral_id, tenant)
        if as_json:
            _emit(r.to_dict())
            return
        out.print(f"referral {r.id} of case {r.case_id}: {r.status}")
        out.print(f"  NCMEC report {r.external_id or '-'} · journal {r.phase or '-'}")
        decided = _printable(r.decided_by or "-")
        out.print(f"  proposed by {_printable(r.created_by)} · decided by {decided}")
        for k, v in r.details.items():
            out.print(f"  {k}: {_printable(v)}")
        if r.error:
            out.print(f"  error: {_printable(r.error)}")


@referrals_app.command("send")
def referrals_send(
    referral_id: Annotated[int, typer.Argument(help="An approved (or failed) referral.")],
    as_json: JsonOpt = False,
) -> None:
    """Send an approved referral now, in this process (the job worker does this on its
    own; use this when no worker runs). Resumes from the referral's journal: a report is
    never submitted twice."""
    with _errors(as_json):
        r = _service().referrals.send(referral_id)
        if as_json:
            _emit(r.to_dict())
        else:
            out.print(
                f"referral {r.id}: {r.status}"
                + (f" · NCMEC report {r.external_id}" if r.external_id else "")
                + (f" · {_printable(r.error)}" if r.error and r.status != "sent" else "")
            )
        if r.status != "sent":
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(referrals_app, name="referrals")
