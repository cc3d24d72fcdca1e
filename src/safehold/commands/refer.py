"""`safehold refer package|verify` and `safehold preservation add|list|show|preserve|fulfil|
withdraw|release`: law-enforcement packages and preservation requests.

A package's evidence is encrypted to the recipient's age public key (``--recipient
age1…``); the recipient's secret key is never given to safehold, except to ``refer
verify --identity-file`` on the recipient's side. The master key of the vault comes from
``SAFEHOLD_VAULT_KEY`` or ``SAFEHOLD_VAULT_KEY_FILE``. Every export, preservation, hold
and release is in the audit log with the caller (``cli:LOGIN``).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from safehold.commands.common import JsonOpt, _db, _emit, _errors, _printable, _who, err, out
from safehold.errors import InvalidValue

if TYPE_CHECKING:
    from safehold.refer.preservation import Preservations, RequestInfo

refer_app = typer.Typer(
    help="Referrals to authorities: law-enforcement packages with encrypted evidence.",
    no_args_is_help=True,
)
preservation_app = typer.Typer(
    help="Preservation requests from law enforcement: record, preserve, track, close.",
    no_args_is_help=True,
)

TenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant.")]


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def _service() -> tuple[Any, Any, Any]:
    """(database, audit log, vault or None)."""
    from safehold.audit import AuditLog
    from safehold.refer.vault import vault_from_env

    db = _db()
    audit = AuditLog(db)
    return db, audit, vault_from_env(db, audit)


def _preservations() -> Preservations:
    from safehold.media_store import MediaStore, default_media_root
    from safehold.refer.preservation import Preservations

    db, audit, vault = _service()
    media = MediaStore(db, os.environ.get("SAFEHOLD_MEDIA_DIR") or default_media_root(db))
    return Preservations(db, audit, vault=vault, media=media)


# --------------------------------------------------------------------------- refer


@refer_app.command("package")
def refer_package(
    case_id: Annotated[int, typer.Argument(help="The case to export.")],
    recipient: Annotated[
        list[str],
        typer.Option(
            "--recipient", "-r", help="The recipient's age public key (age1…); repeatable."
        ),
    ],
    to: Annotated[
        Path, typer.Option("--out", "-o", help="A new (or empty) directory for the package.")
    ],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (required; recorded in the audit log).")
    ] = None,
    request: Annotated[
        int | None,
        typer.Option("--request", help="The preservation request it answers (limits the scope)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            help="Leave out a kind of data: content, context, events, account, decisions, "
            "reports, referrals, preservation, related (repeatable, or comma-separated).",
        ),
    ] = None,
    account: Annotated[
        list[str] | None, typer.Option("--account", help="Only these accounts (repeatable).")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only content from this date (YYYY-MM-DD).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only content up to this date (inclusive).")
    ] = None,
    exclude_item: Annotated[
        list[int] | None,
        typer.Option("--exclude-item", help="Leave out this evidence item (repeatable)."),
    ] = None,
    archive: Annotated[
        str | None, typer.Option("--archive", help="Also write DIR.tar or DIR.zip.")
    ] = None,
    seal: Annotated[
        bool,
        typer.Option("--seal", help="Also write DIR.tar.age: the whole package, encrypted."),
    ] = False,
    tenant: Annotated[str | None, typer.Option("--tenant", help="The case's tenant.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a case as a law-enforcement package: manifest, summary PDF, evidence
    encrypted to the recipient, custody record, SHA256SUMS. Audited as export."""
    from safehold.refer.package import Packages

    with _errors(as_json):
        if reason is None or not reason.strip():
            raise InvalidValue("--reason is required: say why you export the case (it is audited)")
        db, audit, vault = _service()
        result = Packages(db, audit, vault=vault).export(
            case_id,
            to,
            recipients=recipient,
            by=_who(),
            reason=reason,
            tenant=tenant,
            request_id=request,
            exclude=exclude or (),
            accounts=account or None,
            since=since,
            until=until,
            exclude_items=exclude_item or (),
            archive=archive,
            seal_archive=seal,
        )
        if as_json:
            _emit(result.to_dict())
            return
        err.print(
            f"case {result.case_id}: {len(result.files) + 2} files, {len(result.items)} evidence "
            f"items in {_printable(result.path)} ({result.export_id})"
            + (f"; archive {_printable(result.archive)}" if result.archive else "")
            + f"\nencrypted to {', '.join(result.recipients)}\nmanifest.json SHA-256 (give it "
            "to the recipient by another channel):"
        )
        out.print(result.manifest_sha256)


@refer_app.command("verify")
def refer_verify(
    path: Annotated[Path, typer.Argument(help="The package directory.")],
    identity_file: Annotated[
        Path | None,
        typer.Option(
            "--identity-file",
            help="The recipient's age identity (AGE-SECRET-KEY-1…): also decrypt the evidence.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a package: files, SHA256SUMS, custody; with --identity-file also decrypt
    every evidence file in memory and compare its SHA-256. Exit 0 when intact, 1 not."""
    from safehold.refer.package import verify_package

    with _errors(as_json):
        identities = None
        if identity_file is not None:
            identities = [
                line.strip()
                for line in identity_file.read_text(encoding="ascii").splitlines()
                if line.strip().startswith("AGE-SECRET-KEY-")
            ]
            if not identities:
                raise InvalidValue(f"{identity_file} holds no age identity (AGE-SECRET-KEY-1…)")
        checked = verify_package(path, identities)
    if as_json:
        _emit(checked.to_dict())
    elif checked.ok:
        err.print(
            f"package intact: {checked.files} files, {checked.entries} custody entries"
            + (f", {checked.decrypted} evidence files decrypted" if identities else "")
        )
    else:
        for message in checked.problems:
            out.print(_printable(message))
        err.print(f"package BROKEN: {len(checked.problems)} problems")
    raise typer.Exit(0 if checked.ok else 1)


# --------------------------------------------------------------------------- preservation


def _line(r: RequestInfo) -> str:
    flag = " · OVERDUE" if r.overdue() else (" · due soon" if r.due_soon() else "")
    return (
        f"request {r.id}: {_printable(r.reference)} from {_printable(r.authority)} · "
        f"{r.status}{flag}\n"
        f"  account {_printable(r.account_id)} · scope {r.scope.describe()}\n"
        f"  received {_when(r.received_at)} · deadline {_when(r.deadline_at)} · case "
        f"{r.case_id or '-'} · {len(r.vault_items)} vault items"
    )


@preservation_app.command("add")
def preservation_add(
    reference: Annotated[
        str, typer.Option("--reference", help="The authority's reference (case number).")
    ],
    authority: Annotated[str, typer.Option("--authority", help="Who asked (agency, unit).")],
    account: Annotated[str, typer.Option("--account", help="The platform's account id.")],
    deadline: Annotated[
        str | None,
        typer.Option("--deadline", help="Keep the data until (YYYY-MM-DD, in the future)."),
    ] = None,
    kinds: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            help="Kinds of data covered: content, account, events, decisions, reports "
            "(repeatable or comma-separated; default content, account, events).",
        ),
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this date.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Up to this date.")] = None,
    notes: Annotated[str, typer.Option("--notes", help="Notes (kept with the request).")] = "",
    received: Annotated[
        str | None, typer.Option("--received", help="When it was received (default: now).")
    ] = None,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Record a preservation request (then `preservation preserve ID`)."""
    from safehold.refer.preservation import Scope, parse_when

    with _errors(as_json):
        scope = Scope.from_options(kinds, since, until)
        req = _preservations().record(
            tenant,
            reference,
            authority,
            account,
            scope,
            deadline,
            _who(),
            notes,
            received_at=parse_when(received, "--received"),
        )
        if as_json:
            _emit(req.to_dict())
            return
        out.print(_line(req))


@preservation_app.command("list")
def preservation_list(
    status: Annotated[
        str | None,
        typer.Option("--status", help="open, preserved, fulfilled, withdrawn (open: both open)."),
    ] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open ones past due.")] = False,
    due_soon: Annotated[
        bool, typer.Option("--due-soon", help="Only open ones due within the warning period.")
    ] = False,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """List preservation requests (newest first; --overdue / --due-soon: soonest first)."""
    with _errors(as_json):
        pres = _preservations()
        if overdue:
            rows = pres.overdue(tenant)
        elif due_soon:
            rows = pres.due_soon(tenant)
        else:
            rows = pres.list(tenant, status=status, limit=limit)
        if as_json:
            _emit({"requests": [r.to_dict() for r in rows]})
            return
        if not rows:
            err.print("no requests match")
            return
        table = Table(header_style="bold")
        for col in ("id", "reference", "authority", "account", "status", "deadline (UTC)", "items"):
            table.add_column(col, overflow="fold")
        for r in rows:
            flag = " OVERDUE" if r.overdue() else (" soon" if r.due_soon() else "")
            table.add_row(
                str(r.id),
                _printable(r.reference),
                _printable(r.authority),
                _printable(r.account_id),
                r.status,
                _when(r.deadline_at) + flag,
                str(len(r.vault_items)),
            )
        out.print(table)


@preservation_app.command("show")
def preservation_show(
    request_id: Annotated[int, typer.Argument(help="The request id.")],
    as_json: JsonOpt = False,
) -> None:
    """Show a request, its active holds and its history."""
    with _errors(as_json):
        pres = _preservations()
        req = pres.get(request_id)
        holds = pres.active_holds(request_id)
        history = pres.history(request_id)
        if as_json:
            _emit(
                {
                    "request": req.to_dict(),
                    "holds": [h.to_dict() for h in holds],
                    "history": [e.to_dict() for e in history],
                    "package": pres.package(request_id),
                }
            )
            return
        out.print(_line(req))
        if req.notes:
            for line in req.notes.splitlines():
                out.print("  " + _printable(line))
        out.print(f"holds: {len(holds)} active ({', '.join(str(h.item_id) for h in holds) or '-'})")
        for e in history:
            out.print(
                f"  {e.id} {e.at.strftime('%Y-%m-%d %H:%M:%S')} {e.action} by {_printable(e.actor)}"
            )


@preservation_app.command("preserve")
def preservation_preserve(
    request_id: Annotated[int, typer.Argument(help="The request id.")],
    as_json: JsonOpt = False,
) -> None:
    """Preserve what the request covers into the vault and put it on legal hold."""
    with _errors(as_json):
        result = _preservations().preserve(request_id, _who())
        if as_json:
            _emit(result.to_dict())
            return
        new, held = len(result.new_items), len(result.held)
        err.print(
            f"request {request_id}: {result.events} events in scope; {new} "
            f"item{'' if new == 1 else 's'} stored in the vault, {held} put on hold "
            f"({len(result.items)} held in all)"
        )
        for why in result.skipped:
            err.print("  skipped: " + _printable(why))


@preservation_app.command("fulfil")
def preservation_fulfil(
    request_id: Annotated[int, typer.Argument(help="The request id.")],
    package: Annotated[
        Path | None, typer.Option("--package", help="The package made for it (its directory).")
    ] = None,
    release_holds: Annotated[
        bool, typer.Option("--release-holds", help="Also release the legal holds.")
    ] = False,
    note: Annotated[str, typer.Option("--note", help="A note for the record.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Close a request as answered (the holds stay unless --release-holds)."""
    with _errors(as_json):
        req = _preservations().fulfil(
            request_id, _who(), package, release_holds=release_holds, note=note
        )
        if as_json:
            _emit(req.to_dict())
            return
        out.print(_line(req))


@preservation_app.command("withdraw")
def preservation_withdraw(
    request_id: Annotated[int, typer.Argument(help="The request id.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (required).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Close a request as withdrawn and release its legal holds."""
    with _errors(as_json):
        req = _preservations().withdraw(request_id, _who(), reason or "")
        if as_json:
            _emit(req.to_dict())
            return
        out.print(_line(req))


@preservation_app.command("release")
def preservation_release(
    request_id: Annotated[int, typer.Argument(help="The request id (fulfilled).")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (required).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Release the legal holds of a fulfilled request."""
    with _errors(as_json):
        released = _preservations().release_holds(request_id, _who(), reason or "")
        if as_json:
            _emit({"released": released})
            return
        err.print(f"request {request_id}: {len(released)} holds released")


def register(app: typer.Typer) -> None:
    """Add the ``refer`` and ``preservation`` groups to the main app."""
    app.add_typer(refer_app, name="refer")
    app.add_typer(preservation_app, name="preservation")
