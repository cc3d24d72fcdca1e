"""`safehold vault` commands: the evidence vault (list, show, hold, release, expire,
verify, export, rotate-key, keygen).

The master key comes from ``SAFEHOLD_VAULT_KEY`` or ``SAFEHOLD_VAULT_KEY_FILE``; a new
key for ``rotate-key`` is read from a file (``--new-key-file``) or standard input, never
from an argument (it would land in shell history and the process list). Every access,
export, hold, release and expiry is written to the audit log with the caller
(``cli:LOGIN``).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from safehold.commands.common import JsonOpt, _db, _emit, _errors, _printable, _who, err, out
from safehold.errors import InvalidValue

if TYPE_CHECKING:
    from safehold.refer.vault import EvidenceVault, ItemInfo, MasterKey

vault_app = typer.Typer(
    help="The evidence vault: preserved evidence, legal holds, retention, custody, export.",
    no_args_is_help=True,
)

ReasonOpt = Annotated[
    str | None, typer.Option("--reason", help="Why (required; recorded in the audit log).")
]


def _vault() -> EvidenceVault:
    from safehold.refer.vault import EvidenceVault

    return EvidenceVault.from_env(_db())


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def _need_reason(reason: str | None, what: str) -> str:
    if reason is None or not reason.strip():
        raise InvalidValue(f"--reason is required: say why you {what} (it is audited)")
    return reason


def _item_line(item: ItemInfo) -> str:
    holds = ", ".join(h.reference for h in item.holds)
    return (
        f"item {item.id}: {item.category} · sha256 {item.sha256} · {item.size:,} bytes\n"
        f"  labels {' '.join(item.labels) or '-'} · event {item.event_id or '-'} · "
        f"case {item.case_id or '-'} · content {_printable(item.content_id or '-')}\n"
        f"  preserved {_when(item.preserved_at)} by {_printable(item.preserved_by)} · "
        f"kept until {_when(item.retain_until)}"
        + (f" · ON HOLD ({_printable(holds)})" if item.on_hold else "")
    )


@vault_app.command("list")
def vault_list(
    case: Annotated[int | None, typer.Option("--case", help="Only items of this case.")] = None,
    event: Annotated[int | None, typer.Option("--event", help="Only items of this event.")] = None,
    sha256: Annotated[str | None, typer.Option("--sha256", help="Only this content.")] = None,
    held: Annotated[bool, typer.Option("--held", help="Only items on legal hold.")] = False,
    due: Annotated[
        bool, typer.Option("--due", help="Only items past retention and not held.")
    ] = False,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    before: Annotated[int | None, typer.Option("--before", help="Items before this id.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List preserved items, newest first (plain columns only: nothing is decrypted)."""
    with _errors(as_json):
        if not 1 <= limit <= 1000:
            raise InvalidValue("--limit must be between 1 and 1000")
        items = _vault().list_items(
            tenant=tenant,
            case_id=case,
            event_id=event,
            sha256=sha256,
            on_hold=True if held else None,
            due=True if due else None,
            limit=limit,
            before_id=before,
        )
        if as_json:
            _emit({"items": [i.to_dict() for i in items]})
            return
        if not items:
            err.print("no items match")
            return
        table = Table(header_style="bold")
        for col in (
            "id",
            "tenant",
            "category",
            "labels",
            "sha256",
            "event",
            "case",
            "preserved (UTC)",
            "kept until",
            "hold",
        ):
            table.add_column(col, overflow="fold")
        for i in items:
            table.add_row(
                str(i.id),
                _printable(i.tenant),
                i.category,
                " ".join(i.labels),
                i.sha256[:16] + "…",
                str(i.event_id or "-"),
                str(i.case_id or "-"),
                _when(i.preserved_at),
                _when(i.retain_until),
                _printable(", ".join(h.reference for h in i.holds)) or "-",
            )
        out.print(table)


@vault_app.command("show")
def vault_show(
    item_id: Annotated[int, typer.Argument(help="The item id.")],
    context: Annotated[
        bool,
        typer.Option("--context", help="Also decrypt and print the sealed context (audited)."),
    ] = False,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show an item, its holds and its chain of custody; with --context (and --reason)
    also its decrypted context (recorded as vault_access)."""
    with _errors(as_json):
        vault = _vault()
        item = vault.get(item_id)
        holds = vault.holds(item_id)
        custody = vault.custody(item_id)
        record = None
        if context:
            record = vault.read_context(
                item_id, by=_who(), reason=_need_reason(reason, "read the context")
            )
        if as_json:
            _emit(
                {
                    "item": item.to_dict(),
                    "holds": [h.to_dict() for h in holds],
                    "custody": [e.to_dict() for e in custody],
                    **({"record": record} if record is not None else {}),
                }
            )
            return
        out.print(_item_line(item))
        for h in holds:
            state = (
                "active"
                if h.active
                else f"released {_when(h.released_at)} by {_printable(h.released_by or '-')}"
            )
            out.print(
                f"hold {h.id}: {_printable(h.reference)} · {_printable(h.reason)} · set "
                f"{_when(h.held_at)} by {_printable(h.held_by)} · {state}"
            )
        out.print("custody:")
        for e in custody:
            why = e.details.get("reason") or e.details.get("why") or ""
            out.print(
                f"  {e.id} {e.at.strftime('%Y-%m-%d %H:%M:%S')} {e.action} by "
                f"{_printable(e.actor)}" + (f": {_printable(why)}" if why else "")
            )
        if record is not None:
            for line in json.dumps(record, indent=2, ensure_ascii=False).splitlines():
                out.print(_printable(line))


@vault_app.command("hold")
def vault_hold(
    item_ids: Annotated[list[int], typer.Argument(help="Item ids.")],
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="The case, order or request number (required)."),
    ] = None,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put items on legal hold: kept past their retention until released."""
    with _errors(as_json):
        if reference is None or not reference.strip():
            raise InvalidValue("--reference is required: the case, order or request number")
        why = _need_reason(reason, "hold them")
        vault = _vault()
        holds = [vault.hold(i, by=_who(), reason=why, reference=reference) for i in item_ids]
        if as_json:
            _emit({"holds": [h.to_dict() for h in holds]})
            return
        for h in holds:
            err.print(f"item {h.item_id}: on hold {_printable(h.reference)} (hold {h.id})")


@vault_app.command("release")
def vault_release(
    item_ids: Annotated[list[int], typer.Argument(help="Item ids.")],
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="The hold to release (needed when there are several)."),
    ] = None,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Release a legal hold; the item is then kept only until its retention date."""
    with _errors(as_json):
        why = _need_reason(reason, "release the hold")
        vault = _vault()
        holds = [vault.release(i, by=_who(), reason=why, reference=reference) for i in item_ids]
        if as_json:
            _emit({"released": [h.to_dict() for h in holds]})
            return
        for h in holds:
            err.print(f"item {h.item_id}: hold {_printable(h.reference)} released")


@vault_app.command("expire")
def vault_expire(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be deleted.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete the items past retention and not on hold (the worker does this every
    minute); each leaves a tombstone in the audit log."""
    from safehold.refer.vault import DIR_ENV, EvidenceVault, default_vault_root, vault_from_env

    with _errors(as_json):
        db = _db()
        # deleting decrypts nothing: expiry works without the master key too
        vault = vault_from_env(db) or EvidenceVault(
            db, os.environ.get(DIR_ENV, "").strip() or default_vault_root(db), None
        )
        report = vault.expire(by="system", dry_run=dry_run)
        if as_json:
            _emit(report.to_dict())
            return
        verb = "would delete" if dry_run else "deleted"
        err.print(
            f"{verb} {len(report.expired)} items"
            + ("" if dry_run else f" ({len(report.blobs_deleted)} blobs)")
            + (f"; {len(report.held)} past retention kept on hold" if report.held else "")
        )
        for i in report.expired:
            out.print(str(i))


@vault_app.command("verify")
def vault_verify(
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Check an export bundle instead of the vault."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Decrypt and authenticate everything in the vault (blobs, keys, contexts), check it
    against the audit log and the audit chain. Exit 0 when intact, 1 with each problem."""
    from safehold.refer.vault import verify_bundle

    with _errors(as_json):
        if bundle is not None:
            checked = verify_bundle(bundle)
            if as_json:
                _emit(checked.to_dict())
            elif checked.ok:
                err.print(
                    f"bundle intact: {checked.files} files and {checked.entries} custody "
                    "entries check out"
                )
            else:
                for message in checked.problems:
                    out.print(_printable(message))
                err.print(f"bundle BROKEN: {len(checked.problems)} problems")
            raise typer.Exit(0 if checked.ok else 1)
        result = _vault().verify(by=_who())
    if as_json:
        _emit(result.to_dict())
    elif result.ok:
        err.print(
            f"vault intact: {result.items} items, {result.blobs} blobs, {result.keys} data keys; "
            f"audit log intact ({result.audit.checked} entries)"
        )
    else:
        for p in result.problems:
            out.print(f"{p.kind}: {_printable(p.message)}")
        err.print(f"vault BROKEN: {len(result.problems)} problems")
    raise typer.Exit(0 if result.ok else 1)


@vault_app.command("export")
def vault_export(
    item_ids: Annotated[list[int], typer.Argument(help="Item ids.")],
    to: Annotated[Path, typer.Option("--to", help="A new (or empty) directory for the bundle.")],
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write an evidence bundle: the decrypted files, manifest.json (SHA-256 of every file)
    and custody.json (the items' audit entries). Recorded as vault_export."""
    with _errors(as_json):
        why = _need_reason(reason, "export them")
        result = _vault().export(item_ids, to, by=_who(), reason=why)
        if as_json:
            _emit(result.to_dict())
            return
        err.print(
            f"exported {len(result.items)} items to {_printable(result.path)} "
            f"({result.export_id}); manifest.json SHA-256:"
        )
        out.print(result.manifest_sha256)


def _read_new_key(path: Path | None) -> MasterKey:
    from safehold.refer.vault import MasterKey, read_key_file

    if path is not None:
        return read_key_file(path, f"the new key file {path}")
    if sys.stdin is None:
        raise InvalidValue("no new key: standard input is closed; use --new-key-file")
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line.strip():
            raise InvalidValue(
                "no new key on standard input: pipe it in as the first line "
                "(base64 of 32 bytes), or use --new-key-file"
            )
        return MasterKey.parse(line, "the new key on standard input")
    text = typer.prompt("New master key (base64)", hide_input=True, err=True)
    return MasterKey.parse(text, "the new key")


@vault_app.command("rotate-key")
def vault_rotate_key(
    new_key_file: Annotated[
        Path | None,
        typer.Option(
            "--new-key-file",
            help="A file (mode 0600) with the new key; else it is read from standard input.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-wrap every data key under a new master key (the content is not re-encrypted).
    The configured key is the old one; configure the new one afterwards."""
    with _errors(as_json):
        vault = _vault()
        new_key = _read_new_key(new_key_file)
        report = vault.rotate(new_key, by=_who())
        if as_json:
            _emit(report.to_dict())
            return
        err.print(
            f"rotated: {report.rewrapped} data keys re-wrapped from {report.old_key} to "
            f"{report.new_key}.\nNow set SAFEHOLD_VAULT_KEY (or the file SAFEHOLD_VAULT_KEY_FILE "
            f"names) to the new key and restart safehold; the old key {report.old_key} is no "
            "longer needed: destroy it."
        )


@vault_app.command("keygen")
def vault_keygen(
    path: Annotated[
        Path, typer.Argument(help="The key file to write (mode 0600; must not exist).")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Write a new random master key to a file readable by its owner only (for
    SAFEHOLD_VAULT_KEY_FILE, or the new key of rotate-key). The key is never printed."""
    from safehold.refer.vault import MasterKey

    with _errors(as_json):
        key = MasterKey.generate()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key.encode() + "\n")
        if as_json:
            _emit({"path": str(path), "key_id": key.id})
            return
        err.print(f"wrote master key {key.id} to {_printable(path)} (mode 0600)")


def register(app: typer.Typer) -> None:
    """Add the ``vault`` group to the main app."""
    app.add_typer(vault_app, name="vault")
