"""The ``safehold`` command: a thin shell over the library.

Every command prints tables for people and, with ``--json``, JSON (lines) for
programs. Progress and messages go to standard error, results to standard output.
Exit codes: 0 success, 1 some input failed (the others were still processed),
2 the command could not run (bad arguments, unknown bank, ...).
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from safehold import __version__
from safehold.errors import InvalidValue, SafeholdError

if TYPE_CHECKING:
    from safehold.hashing import Mode

app = typer.Typer(
    name="safehold",
    help="Open child-safety platform: hash, bank, match and scan content.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
bank_app = typer.Typer(help="Create, fill, inspect and export banks.", no_args_is_help=True)
app.add_typer(bank_app, name="bank")

from safehold.commands.common import (  # noqa: E402
    JsonOpt,
    _db,
    _emit,
    _errors,
    _fail,
    _printable,
    _show,
    _State,
    _who,
    err,
    out,
)


def _version(value: bool) -> None:
    if value:
        print(f"safehold {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="SAFEHOLD_DATABASE_URL",
            help="Database URL (default: sqlite:///safehold.db in the working directory).",
            show_envvar=True,
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    _State.db_url = db


# --------------------------------------------------------------------------- hash


def _mode(mode: str, *, as_json: bool) -> Mode:
    if mode not in ("exact", "fast"):
        _fail("--mode must be 'exact' or 'fast'", as_json=as_json)
    return cast("Mode", mode)


@app.command("hash")
def hash_cmd(
    paths: Annotated[
        list[Path], typer.Argument(help="Image or video files, or directories (recursive).")
    ],
    fps: Annotated[
        float, typer.Option("--fps", help="Video frames hashed per second; 0 hashes every frame.")
    ] = 1.0,
    mode: Annotated[
        str, typer.Option("--mode", help="exact (reference values) or fast (reduced JPEG decode).")
    ] = "exact",
    dihedral: Annotated[
        bool, typer.Option("--dihedral", help="Also print the PDQ of the 8 rotations/flips.")
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", "-w", help="Processes (default: all cores).")
    ] = 0,
    as_json: JsonOpt = True,
) -> None:
    """Hash files: one JSON object per line.

    Images: {"path","md5","sha256","pdq","pdq_quality"}; videos: {"path","md5",
    "sha256","vpdq":[{"frame","timestamp","pdq","quality"}]}. A file that fails prints
    {"path","error":{"code","message"}}; the others go on and the exit code is 1.
    """
    from safehold.scan import hash_files, iter_files

    if fps < 0:
        _fail("--fps must be 0 (every frame) or positive", as_json=True)
    hash_mode = _mode(mode, as_json=True)
    failed = False
    files = list(iter_files(paths))
    n_workers = workers or (min(os.cpu_count() or 1, len(files)) if len(files) > 1 else 1)
    with _errors(True):
        for path, res in hash_files(
            files, workers=n_workers, fps=fps, mode=hash_mode, dihedral=dihedral
        ):
            if isinstance(res, SafeholdError):
                failed = True
                _emit({"path": path, "error": {"code": res.code, "message": res.message}})
                continue
            obj: dict[str, Any] = {"path": path, **res.to_json()}
            if dihedral and res.pdq_dihedral:
                from safehold.signals.pdq import DIHEDRAL_NAMES

                obj["pdq_dihedral"] = dict(zip(DIHEDRAL_NAMES, res.pdq_dihedral, strict=True))
            _emit(obj)
            sys.stdout.flush()
    raise typer.Exit(1 if failed else 0)


# --------------------------------------------------------------------------- banks


def _parse_thresholds(items: list[str] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidValue(f"--threshold takes SIGNAL=NUMBER (e.g. pdq=31), not {item[:60]!r}")
        try:
            out[name.strip()] = int(value)
        except ValueError:
            raise InvalidValue(
                f"--threshold {item[:60]!r}: {value[:40]!r} is not a whole number"
            ) from None
    return out


def _bank_table(banks: list[Any]) -> Table:
    table = Table(title=None, header_style="bold")
    for col in ("bank", "kind", "entries", "by signal", "thresholds", "version", "updated (UTC)"):
        table.add_column(col)
    for b in banks:
        d = b.to_dict()
        table.add_row(
            b.name,
            b.kind + (" +dihedral" if b.dihedral else ""),
            f"{d['entries']:,}",
            ", ".join(f"{k}: {v:,}" for k, v in sorted(b.counts.items())) or "-",
            ", ".join(
                f"pdq<={v}" if k == "pdq" else f"vpdq>={v}%"
                for k, v in sorted(d["thresholds"].items())
                if k in ("pdq", "vpdq")
            ),
            str(b.version),
            b.updated_at.strftime("%Y-%m-%d %H:%M"),
        )
    return table


@bank_app.command("create")
def bank_create(
    name: Annotated[str, typer.Argument(help="Bank name: letters, digits, '_', '-', '.'.")],
    kind: Annotated[
        str, typer.Option("--kind", help="block, or negative (known false positives).")
    ] = "block",
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    threshold: Annotated[
        list[str] | None,
        typer.Option("--threshold", "-t", help="SIGNAL=N, e.g. pdq=31 (Hamming) or vpdq=80 (%)."),
    ] = None,
    dihedral: Annotated[
        bool, typer.Option("--dihedral", help="Also match rotated/flipped copies.")
    ] = False,
    tenant: Annotated[
        str, typer.Option("--tenant", help="The tenant that owns the bank.")
    ] = "default",
    as_json: JsonOpt = False,
) -> None:
    """Create a bank."""
    from safehold.banks import Banks

    with _errors(as_json):
        info = Banks(_db()).create(
            name,
            kind=kind,
            description=description,
            thresholds=_parse_thresholds(threshold),
            dihedral=dihedral,
            tenant=tenant,
        )
        if as_json:
            _emit(info.to_dict())
        else:
            err.print(f"created {info.kind} bank [bold]{_show(info.name)}[/]", markup=True)


@bank_app.command("list")
def bank_list(as_json: JsonOpt = False) -> None:
    """List banks with their entry counts."""
    from safehold.banks import Banks

    with _errors(as_json):
        banks = Banks(_db()).list()
        if as_json:
            _emit({"banks": [b.to_dict() for b in banks]})
        elif not banks:
            err.print(
                "no banks yet: create one with `safehold bank create NAME` or run `safehold demo`"
            )
        else:
            out.print(_bank_table(banks))


@bank_app.command("show")
def bank_show(
    name: str,
    entries: Annotated[
        int, typer.Option("--entries", "-n", help="Also show the first N entries.")
    ] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Show a bank's settings, counts and first entries."""
    from safehold.banks import Banks

    with _errors(as_json):
        banks = Banks(_db())
        info = banks.get(name)
        first = banks.entries(name, limit=entries) if entries > 0 else []
        if as_json:
            _emit({**info.to_dict(), "first_entries": [e.to_dict() for e in first]})
            return
        out.print(_bank_table([info]))
        if info.description:
            out.print(_printable(info.description))
        if first:
            table = Table(header_style="bold")
            for col in ("id", "signal", "value", "labels", "source", "external id", "added (UTC)"):
                table.add_column(col, overflow="fold")
            for e in first:
                value = e.value if len(e.value) <= 64 else e.value[:61] + "..."
                table.add_row(
                    str(e.id),
                    e.signal_type,
                    _printable(value),
                    " ".join(e.labels),
                    e.source,
                    _printable(e.external_id or ""),
                    e.added_at.strftime("%Y-%m-%d %H:%M"),
                )
            out.print(table)


@bank_app.command("share")
def bank_share(
    name: Annotated[str, typer.Argument(help="The bank to share.")],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant to share it with.")],
    as_json: JsonOpt = False,
) -> None:
    """Share a bank read-only with another tenant (its content is matched against it)."""
    from safehold.banks import Banks

    with _errors(as_json):
        info = Banks(_db()).share(name, tenant, by=_who())
        if as_json:
            _emit(info.to_dict())
        else:
            err.print(f"bank {_show(name)} is shared with {_show(tenant)} (read-only)")


@bank_app.command("unshare")
def bank_unshare(
    name: Annotated[str, typer.Argument(help="The shared bank.")],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant to stop sharing with.")],
    as_json: JsonOpt = False,
) -> None:
    """Stop sharing a bank with a tenant."""
    from safehold.banks import Banks

    with _errors(as_json):
        info = Banks(_db()).unshare(name, tenant, by=_who())
        if as_json:
            _emit(info.to_dict())
        else:
            err.print(f"bank {_show(name)} is no longer shared with {_show(tenant)}")


key_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(key_app, name="key")


@key_app.command("create")
def key_create(
    scopes: Annotated[
        str,
        typer.Option("--scopes", help="Comma-separated: scan, banks:read, banks:write, admin."),
    ],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the key acts for.")] = (
        "default"
    ),
    name: Annotated[str, typer.Option("--name", help="A note on what the key is for.")] = "",
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Requests/second (token bucket); 0 = unlimited."),
    ] = None,
    burst: Annotated[int | None, typer.Option("--burst", help="Bucket size (requests).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key. The key is printed once and stored only as a slow hash."""
    from safehold.access import ApiKeys

    with _errors(as_json):
        key, info = ApiKeys(_db()).create(
            scopes=scopes, tenant=tenant, name=name, rate=rate, burst=burst, created_by=_who()
        )
        if as_json:
            _emit({"key": key, **info.to_dict()})
        else:
            err.print(
                f"created key {info.key_id} for tenant {_show(info.tenant)} "
                f"(scopes: {', '.join(info.scopes)}). Store it now; it is not shown again:"
            )
            sys.stdout.write(key + "\n")


@key_app.command("list")
def key_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's keys.")] = None,
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked keys.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List API keys (never their secrets) with their last use."""
    from safehold.access import ApiKeys

    with _errors(as_json):
        keys = ApiKeys(_db()).list(tenant=tenant, revoked=revoked)
        if as_json:
            for k in keys:
                _emit(k.to_dict())
            return
        if not keys:
            err.print("no API keys: create one with `safehold key create --scopes scan`")
            return
        table = Table(header_style="bold")
        for col in ("id", "tenant", "scopes", "name", "created", "last used", "revoked"):
            table.add_column(col)
        for k in keys:
            table.add_row(
                k.key_id,
                _show(k.tenant),
                ",".join(k.scopes),
                _show(k.name),
                k.created_at.strftime("%Y-%m-%d %H:%M"),
                k.last_used_at.strftime("%Y-%m-%d %H:%M") if k.last_used_at else "never",
                k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "",
            )
        out.print(table)


@key_app.command("revoke")
def key_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (12 hex digits), or the whole key.")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API key; every replica refuses it within a second."""
    from safehold.access import ApiKeys
    from safehold.access.keys import KEY_FORMAT

    with _errors(as_json):
        m = KEY_FORMAT.fullmatch(key_id.strip())
        info = ApiKeys(_db()).revoke(m.group(1) if m else key_id.strip(), by=_who())
        if as_json:
            _emit(info.to_dict())
        else:
            err.print(f"revoked key {info.key_id}")


@bank_app.command("delete")
def bank_delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete a bank and all its entries."""
    from safehold.banks import Banks

    with _errors(as_json):
        banks = Banks(_db())
        info = banks.get(name)
        if not yes:
            if not sys.stdin.isatty():
                _fail(
                    "refusing to delete without --yes when not run interactively", as_json=as_json
                )
            n = sum(info.counts.values())
            typer.confirm(f"Delete bank {name!r} and its {n:,} entries?", abort=True)
        n = banks.delete(name, by=_who())
        if as_json:
            _emit({"deleted": name, "entries": n})
        else:
            err.print(f"deleted bank [bold]{_show(name)}[/] ({n:,} entries)", markup=True)


@bank_app.command("add")
def bank_add(
    name: str,
    signal_type: Annotated[
        str | None, typer.Argument(help="md5, sha256, pdq, vpdq or url.")
    ] = None,
    values: Annotated[
        list[str] | None, typer.Argument(help="Values; '-' reads one per line from stdin.")
    ] = None,
    media: Annotated[
        list[Path] | None,
        typer.Option("--media", "-m", help="Hash these image/video files and add their signals."),
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="Taxonomy label (repeatable).")
    ] = None,
    source: Annotated[
        str, typer.Option("--source", help="Provenance, e.g. local, ncmec, partner:NAME.")
    ] = "local",
    external_id: Annotated[str | None, typer.Option("--external-id")] = None,
    note: Annotated[str | None, typer.Option("--note")] = None,
    fps: Annotated[
        float, typer.Option("--fps", help="Video frames hashed per second (--media).")
    ] = 1.0,
    as_json: JsonOpt = False,
) -> None:
    """Add entries: `bank add NAME pdq HASH...`, or `bank add NAME --media FILE...`."""
    from safehold.banks import Banks, make_entry

    with _errors(as_json):
        entries = []
        if values == ["-"]:
            values = [line.strip() for line in sys.stdin if line.strip()]
        if signal_type and values:
            entries = [make_entry(signal_type, v, label, source, external_id, note) for v in values]
        elif signal_type or values:
            raise InvalidValue("give a signal type and at least one value (or use --media FILE)")
        for path in media or []:
            from safehold.hashing import hash_file
            from safehold.signals.vpdq import serialize

            h = hash_file(path, fps=fps)
            ext = external_id or path.name
            entries.append(make_entry("md5", h.md5, label, source, ext, note))
            entries.append(make_entry("sha256", h.sha256, label, source, ext, note))
            if h.pdq is not None:
                entries.append(make_entry("pdq", h.pdq, label, source, ext, note))
            if h.vpdq is not None:
                entries.append(make_entry("vpdq", serialize(h.vpdq), label, source, ext, note))
        if not entries:
            raise InvalidValue("nothing to add: give SIGNAL_TYPE VALUE... or --media FILE...")
        result = Banks(_db()).add(name, entries, added_by=_who())
        if as_json:
            _emit({"bank": name, **result.to_dict(), "ids": result.ids})
        else:
            err.print(
                f"{name}: {result.added} added, {result.updated} updated, "
                f"{result.unchanged} unchanged"
            )


@bank_app.command("remove")
def bank_remove(
    name: str,
    signal_type: Annotated[
        str | None, typer.Argument(help="Signal type of the values to remove.")
    ] = None,
    values: Annotated[list[str] | None, typer.Argument()] = None,
    entry_id: Annotated[
        list[int] | None, typer.Option("--id", help="Entry id (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove entries by value (`bank remove NAME pdq HASH...`) or by id (`--id N`)."""
    from safehold.banks import Banks
    from safehold.signals import get_signal_type

    with _errors(as_json):
        pairs = []
        if signal_type:
            st = get_signal_type(signal_type)
            pairs = [(st.name, st.normalize(v)) for v in values or []]
            if not pairs:
                raise InvalidValue("give at least one value after the signal type")
        if not pairs and not entry_id:
            raise InvalidValue("nothing to remove: give SIGNAL_TYPE VALUE... or --id N")
        removed = Banks(_db()).remove(name, ids=entry_id or [], values=pairs)
        if as_json:
            _emit({"bank": name, "removed": len(removed), "ids": removed})
        else:
            err.print(f"{name}: {len(removed)} entries removed")


@bank_app.command("import")
def bank_import(
    name: str,
    file: Annotated[Path, typer.Argument(help="File to import; '-' reads standard input.")],
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help="auto, jsonl, csv, pytx-csv, pytx-lines or te-csv."),
    ] = "auto",
    source: Annotated[
        str | None, typer.Option("--source", help="Source for rows that name none.")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="Label for rows without labels.")
    ] = None,
    signal_type: Annotated[
        str | None,
        typer.Option("--signal-type", help="Signal type of pytx-lines rows that give none."),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows even if some are bad.")
    ] = False,
    create: Annotated[
        bool, typer.Option("--create", help="Create the bank if it does not exist.")
    ] = False,
    errors_file: Annotated[
        Path | None, typer.Option("--errors", help="Write every bad row to this JSONL file.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import entries from a file. Re-importing the same file changes nothing.

    By default a file with any bad row imports nothing and lists the bad rows
    (line number and reason); --skip-invalid imports the good rows.
    """
    from safehold.banks import Banks
    from safehold.banks.formats import parse, parse_path
    from safehold.errors import ImportFailed, NotFound

    with _errors(as_json):
        banks = Banks(_db())
        try:
            banks.get(name)
        except NotFound:
            if not create:
                raise
            banks.create(name)
        kwargs: dict[str, Any] = {
            "source": source,
            "default_labels": label,
            "default_signal_type": signal_type,
        }
        with err.status(Text(f"reading {_printable(file)} ...")):
            if str(file) == "-":
                stdin = io.TextIOWrapper(
                    sys.stdin.buffer, encoding="utf-8-sig", errors="surrogateescape", newline=""
                )
                parsed = parse(stdin, fmt, **kwargs)
            else:
                parsed = parse_path(file, fmt, **kwargs)
        if errors_file is not None:
            with open(errors_file, "w", encoding="utf-8") as f:
                for e in parsed.errors:
                    f.write(json.dumps(e.to_dict()) + "\n")
        if parsed.error_count and not skip_invalid:
            shown = parsed.errors[:20]
            if as_json:
                _emit(
                    {
                        "error": {
                            "code": ImportFailed.code,
                            "message": f"{parsed.error_count} bad rows; nothing was imported",
                            "rows": parsed.rows,
                            "bad_rows": parsed.error_count,
                            "errors": [e.to_dict() for e in parsed.errors],
                        }
                    }
                )
            else:
                err.print(
                    f"[bold red]error:[/] {parsed.error_count} of {parsed.rows} rows are invalid; "
                    "nothing was imported. Fix them or use --skip-invalid.",
                    markup=True,
                )
                for e in shown:
                    err.print(f"  line {e.line}: {_printable(e.message)}")
                if parsed.error_count > len(shown):
                    err.print(
                        f"  ... and {parsed.error_count - len(shown)} more "
                        "(--errors FILE lists all)"
                    )
            raise typer.Exit(1)
        with err.status(f"importing {len(parsed.entries):,} entries into {name} ..."):
            result = banks.add(name, parsed.entries, added_by=_who())
        summary = {
            "bank": name,
            "format": parsed.format,
            "rows": parsed.rows,
            "bad_rows": parsed.error_count,
            **result.to_dict(),
        }
        if as_json:
            _emit({**summary, "errors": [e.to_dict() for e in parsed.errors]})
        else:
            table = Table(header_style="bold")
            for key in summary:
                table.add_column(key.replace("_", " "))
            table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in summary.values()))
            out.print(table)
            for e in parsed.errors[:20]:
                err.print(f"  skipped line {e.line}: {_printable(e.message)}")


@bank_app.command("export")
def bank_export(
    name: str,
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl, csv or pytx-lines.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout).")
    ] = None,
) -> None:
    """Export a bank's entries (re-importable with `bank import`)."""
    from safehold.banks import Banks
    from safehold.banks.formats import write

    with _errors(False):
        from safehold.banks.repository import audit_export

        db = _db()
        banks = Banks(db)
        info = banks.get(name)
        audit_export(db, name, fmt, by=_who(), tenant=info.tenant)
        if output is None:
            n = write(banks.iter_entries(name), sys.stdout, fmt)
        else:
            with open(output, "w", encoding="utf-8", newline="") as f:
                n = write(banks.iter_entries(name), f, fmt)
        err.print(f"exported {n:,} entries from {name}")


# --------------------------------------------------------------------------- match


@app.command("match")
def match_cmd(
    signal_type: Annotated[str, typer.Argument(help="md5, sha256, pdq, vpdq or url.")],
    values: Annotated[
        list[str], typer.Argument(help="Values to look up; '-' reads one per line from stdin.")
    ],
    bank: Annotated[
        list[str] | None, typer.Option("--bank", "-b", help="Only these banks (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Look signal values up in the banks, many at once (the index loads once).

    JSON lines: {"value","matches":[{"bank","entry_id","external_id","labels",
    "source","distance"}]}.
    """
    from safehold.banks import Matcher
    from safehold.signals import get_signal_type

    with _errors(as_json):
        st = get_signal_type(signal_type)
        if values == ["-"]:
            values = [line.strip() for line in sys.stdin if line.strip()]
        with err.status("loading banks ..."):
            matcher = Matcher(_db(), banks=bank, signal_types=[st.name])
        failed = False
        table = None
        if not as_json:
            table = Table(header_style="bold")
            for col in ("value", "bank", "entry", "external id", "labels", "source", "distance"):
                table.add_column(col, overflow="fold")
        hits = checked = 0
        # Results come out in input order, an invalid value in its place (exit code 1).
        for start in range(0, len(values), 5000):
            chunk: list[tuple[str, str | SafeholdError]] = []
            for v in values[start : start + 5000]:
                try:
                    chunk.append((v, st.normalize(v)))
                except SafeholdError as e:
                    chunk.append((v, e))
            good = [n for _, n in chunk if isinstance(n, str)]
            found = iter(matcher.lookup(st.name, good, banks=bank) if good else [])
            for raw, norm in chunk:
                if isinstance(norm, SafeholdError):
                    failed = True
                    if as_json:
                        _emit({"value": raw, "error": {"code": norm.code, "message": norm.message}})
                    else:
                        err.print(f"[red]{_show(norm.message)}[/]", markup=True, highlight=False)
                    continue
                res = next(found)
                checked += 1
                hits += bool(res.matches)
                if as_json:
                    obj: dict[str, Any] = {"value": raw, **res.to_dict()}
                    _emit(obj)
                elif table is not None:
                    shown = _printable(raw if len(raw) <= 24 else raw[:21] + "...")
                    if not res.matches:
                        table.add_row(shown, Text("no match", style="dim"), "", "", "", "", "")
                    for m in res.matches:
                        table.add_row(
                            shown,
                            m.bank,
                            str(m.entry_id),
                            _printable(m.external_id or ""),
                            " ".join(m.labels),
                            m.source,
                            str(m.distance),
                        )
        if table is not None:
            out.print(table)
            err.print(f"{hits} of {checked} values matched")
    raise typer.Exit(1 if failed else 0)


# --------------------------------------------------------------------------- scan


@app.command("scan")
def scan_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (recursive).")],
    bank: Annotated[
        list[str] | None, typer.Option("--bank", "-b", help="Only these banks (repeatable).")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", "-w", help="Hashing processes (default: all cores).")
    ] = 0,
    fps: Annotated[float, typer.Option("--fps", help="Video frames hashed per second.")] = 1.0,
    mode: Annotated[str, typer.Option("--mode", help="exact or fast.")] = "exact",
    state: Annotated[
        Path | None,
        typer.Option("--state", help="Progress file for resuming (default: per scan, automatic)."),
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore progress of an earlier interrupted scan.")
    ] = False,
    only_matches: Annotated[
        bool, typer.Option("--only-matches", help="With --json, print matched files only.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Scan files against the banks: all cores, progress bar, resumable.

    With --json, one line per file: {"path","kind","matches":[...]} or {"path","error"}.
    A summary table goes to standard error at the end. Interrupted? Run the same
    command again and it continues where it stopped.
    """
    from safehold.banks import Matcher
    from safehold.scan import ScanState, iter_files, scan

    hash_mode = _mode(mode, as_json=as_json)
    if fps < 0:
        _fail("--fps must be 0 (every frame) or positive", as_json=as_json)
    with _errors(as_json):
        with err.status("loading banks ..."):
            matcher = Matcher(_db(), banks=bank)
        settings = {"banks": sorted(bank or []), "fps": fps, "mode": mode}
        state_path = state or ScanState.default_path(paths, settings)
        if restart:
            state_path.unlink(missing_ok=True)
        st = ScanState(state_path)
        if st.done:
            err.print(
                f"resuming: {len(st.done):,} files already scanned (use --restart to start over)"
            )
        total = sum(1 for _ in iter_files(paths))
        counts = {
            "files": 0,
            "matched": 0,
            "no_match": 0,
            "errors": 0,
            "skipped": 0,
            "suppressed": 0,
        }
        by_bank: dict[str, int] = {}
        matched_rows: list[tuple[str, str]] = []
        progress = Progress(
            TextColumn("scanning"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[hits]} matched"),
            TimeElapsedColumn(),
            console=err,
            transient=False,
            disable=not err.is_terminal,
        )
        with progress:
            task = progress.add_task("scan", total=total, hits=0)

            def skipped(_: Path) -> None:
                counts["skipped"] += 1
                progress.advance(task)

            try:
                for o in scan(
                    paths,
                    matcher,
                    banks=bank,
                    workers=workers or None,
                    fps=fps,
                    mode=hash_mode,
                    state=st,
                    on_skip=skipped,
                ):
                    counts["files"] += 1
                    if o.error is not None:
                        counts["errors"] += 1
                    elif o.result is not None and o.result.matches:
                        counts["matched"] += 1
                        for m in o.result.matches:
                            by_bank[m.bank] = by_bank.get(m.bank, 0) + 1
                        labels = sorted({lb for m in o.result.matches for lb in m.labels})
                        banks_hit = ", ".join(sorted({m.bank for m in o.result.matches}))
                        matched_rows.append(
                            (
                                _printable(o.path),
                                banks_hit + (f" [{' '.join(labels)}]" if labels else ""),
                            )
                        )
                    else:
                        counts["no_match"] += 1
                    if o.result is not None and o.result.suppressed:
                        counts["suppressed"] += 1
                    if as_json and (
                        not only_matches or (o.result is not None and o.result.matches)
                    ):
                        _emit(o.to_dict())
                        sys.stdout.flush()
                    elif not as_json and o.error is not None:
                        shown = f"{_show(o.path)}: {_show(o.error.message)}"
                        progress.console.print(f"[yellow]{shown}[/]", markup=True, highlight=False)
                    progress.update(task, advance=1, hits=counts["matched"])
            except KeyboardInterrupt:
                st.close()
                err.print(
                    f"interrupted; progress saved in {_printable(state_path)} — "
                    "run the same command to resume"
                )
                raise typer.Exit(130) from None
        st.finish()
        if not as_json and matched_rows:
            table = Table(title="matched files", header_style="bold")
            table.add_column("file", overflow="fold")
            table.add_column("banks [labels]")
            for row in matched_rows:
                table.add_row(*row)
            out.print(table)
        summary = Table(title="scan summary", header_style="bold")
        for key in counts:
            summary.add_column(key.replace("_", " "), justify="right")
        summary.add_row(*(f"{v:,}" for v in counts.values()))
        err.print(summary)
        if by_bank:
            err.print(
                "matches by bank: " + ", ".join(f"{k}: {v:,}" for k, v in sorted(by_bank.items()))
            )
    raise typer.Exit(1 if counts["errors"] else 0)


# --------------------------------------------------------------------------- demo, serve, labels


@app.command("demo")
def demo_cmd(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to write the synthetic pictures.")
    ] = Path("demo-media"),
    as_json: JsonOpt = False,
) -> None:
    """Create the demo bank of synthetic pictures (safe to run again).

    The first time, its query pictures are also scanned through the rules and a few
    synthetic reports are submitted, so the review console has cases and complaints."""
    from safehold.demo import create_demo, scan_demo_queries, submit_demo_reports

    with _errors(as_json):
        with err.status("drawing synthetic pictures and filling the demo bank ..."):
            db = _db()
            res = create_demo(db, directory)
            scanned = scan_demo_queries(db, res)
            reported = submit_demo_reports(db)
        if as_json:
            _emit(
                {
                    "bank": res.bank,
                    "directory": str(res.directory),
                    "pictures": len(res.pictures),
                    "queries": [str(q) for q in res.queries],
                    "scanned": scanned,
                    "reports": reported,
                    **(res.added.to_dict() if res.added else {}),
                }
            )
        else:
            err.print(
                f"demo bank [bold]{_show(res.bank)}[/]: {len(res.pictures)} synthetic pictures in "
                f"{_show(res.directory)}/bank.\nTry: safehold scan {_show(res.directory)}/queries"
                "\nFor the HTTP API, make a key: safehold key create --scopes scan,banks:read"
                + (
                    f"\n{scanned} demo uploads scanned through the rules: their review cases "
                    "open when `safehold serve` runs."
                    if scanned
                    else ""
                )
                + (
                    f"\n{reported} demo reports submitted: complaints at /ui/complaints."
                    if reported
                    else ""
                )
                + "\nFor the review console (/ui/), make a login: "
                "safehold user create NAME --role admin",
                markup=True,
            )


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p")] = 8000,
    demo: Annotated[bool, typer.Option("--demo", help="Create the demo bank first.")] = False,
    workers: Annotated[int, typer.Option("--workers", help="Server processes (min 1).")] = 1,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker", help="Run no job worker in this process (run `safehold worker`)."
        ),
    ] = False,
) -> None:
    """Run the HTTP service (with a job worker in the process unless --no-worker)."""
    import uvicorn

    from safehold.web.app import create_app

    with _errors(False):
        db = _db()
        if demo:
            from safehold.demo import create_demo, scan_demo_queries, submit_demo_reports

            scan_demo_queries(db, create_demo(db))
            submit_demo_reports(db)
        err.print(f"safehold {__version__} on http://{host}:{port}/ (database: {db.describe()})")
        # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal: exit 0
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        # No access log: it would record client IP addresses.
        if workers > 1:
            os.environ["SAFEHOLD_DATABASE_URL"] = db.url  # each worker opens the same database
            if no_worker:
                os.environ["SAFEHOLD_WORKER"] = "0"
            uvicorn.run(
                "safehold.web.app:app_from_env",
                factory=True,
                host=host,
                port=port,
                log_level="info",
                access_log=False,
                workers=workers,
                timeout_graceful_shutdown=30,
            )
        else:
            uvicorn.run(
                create_app(db, background_load=True, worker=not no_worker),
                host=host,
                port=port,
                log_level="info",
                access_log=False,
                timeout_graceful_shutdown=30,
            )


@app.command("prune-changes")
def prune_changes_cmd(
    days: Annotated[
        float, typer.Option("--older-than", help="Delete change-log rows older than DAYS days.")
    ] = 7.0,
    as_json: JsonOpt = False,
) -> None:
    """Trim the change log replicas follow (a replica that starts later loads the tables)."""
    from datetime import UTC, datetime, timedelta

    from safehold.store import changes

    with _errors(as_json):
        if days < 0:
            raise InvalidValue("--older-than must be zero or more days")
        db = _db()
        with db.engine.begin() as conn:
            n = changes.prune(conn, datetime.now(UTC) - timedelta(days=days))
        if as_json:
            _emit({"deleted": n})
        else:
            err.print(f"deleted {n} change-log rows older than {days:g} days")


@app.command("labels")
def labels_cmd(as_json: JsonOpt = False) -> None:
    """List the taxonomy labels banks and decisions use."""
    from safehold.taxonomy import LABELS, expand

    if as_json:
        for label in LABELS.values():
            _emit(
                {
                    "label": label.name,
                    "scheme": label.scheme,
                    "title": label.title,
                    "severity": label.severity,
                    "implies": [x for x in expand([label.name]) if x != label.name],
                }
            )
        return
    table = Table(header_style="bold")
    for col in ("label", "scheme", "title", "severity"):
        table.add_column(col)
    for label in sorted(LABELS.values(), key=lambda x: (-x.severity, x.name)):
        table.add_row(label.name, label.scheme, label.title, str(label.severity))
    out.print(table)


def _register_groups() -> None:
    from safehold.commands import (
        audit,
        cases,
        intake,
        jobs,
        refer,
        referrals,
        rules,
        users,
        vault,
    )

    for module in (rules, cases, users, audit, jobs, intake, vault, refer, referrals):
        module.register(app)


_register_groups()


def main() -> None:
    # Untrusted bytes on standard input (invalid UTF-8) reach the validators as
    # surrogates and are reported as bad values; output never fails to encode.
    for stream, errors in ((sys.stdin, "surrogateescape"), (sys.stdout, "backslashreplace")):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors=errors)
    app()


if __name__ == "__main__":
    main()
