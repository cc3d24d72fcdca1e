"""``safehold rules``: validate, load, show, list, activate, hits, test (replay)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from safehold.commands.common import (
    JsonOpt,
    _db,
    _emit,
    _errors,
    _printable,
    _show,
    _who,
    err,
    out,
)

rules_app = typer.Typer(
    help="Policy as data: validate, store, activate and replay rule files.",
    no_args_is_help=True,
)

TenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant whose rules these are.")]
VersionOpt = Annotated[
    int | None,
    typer.Option("--version", "-v", help="A stored version (default: the active one).", min=0),
]


def register(app: typer.Typer) -> None:
    """Add the ``rules`` group to the main app."""
    app.add_typer(rules_app, name="rules")


@contextmanager
def _rule_errors(as_json: bool) -> Iterator[None]:
    """A rule file with problems: every ``FILE:LINE:COL: message`` and exit code 1."""
    from safehold.rules import RulesError

    try:
        yield
    except RulesError as e:
        if as_json:
            _emit(
                {
                    "valid": False,
                    "error": {"code": e.code, "message": e.message, "problems": e.problems},
                }
            )
        else:
            for line in e.locations():
                err.print(_printable(line), soft_wrap=True)
            n = len(e.problems)
            err.print(f"{n} problem{'s' if n != 1 else ''}; nothing was stored")
        raise typer.Exit(1) from None


def _rules_table(stored: Any, rows: list[dict[str, Any]] | None = None) -> Table:
    table = Table(header_style="bold")
    columns = ["#", "rule", "priority", "actions", "line"]
    if rows is not None:
        columns += ["hits", "last hit (UTC)"]
    for col in columns:
        table.add_column(col)
    items = rows if rows is not None else [r.summary() for r in stored.rules.ordered()]
    for i, r in enumerate(items, 1):
        name = _printable(r["name"]) + (" (shadow)" if r["shadow"] else "")
        row = [str(i), name, str(r["priority"]), ", ".join(r["actions"]), str(r["line"])]
        if rows is not None:
            last = r["last_hit_at"]
            row += [f"{r['hits']:,}", last[:19].replace("T", " ") if last else "-"]
        table.add_row(*row)
    return table


def _header(stored: Any) -> str:
    if stored.id is None:
        return (
            f"tenant {_show(stored.tenant)}: built-in rules (version 0; "
            "store your own with `safehold rules load FILE`)"
        )
    state = "active" if stored.active else "inactive"
    when = stored.created_at.strftime("%Y-%m-%d %H:%M") if stored.created_at else "?"
    by = f" by {_show(stored.created_by)}" if stored.created_by else ""
    note = f" - {_show(stored.note)}" if stored.note else ""
    return (
        f"tenant {_show(stored.tenant)}: version {stored.version} ({state}), {when} UTC{by}{note}"
    )


@rules_app.command("validate")
def rules_validate(
    file: Annotated[Path, typer.Argument(help="A YAML rule file.")],
    as_json: JsonOpt = False,
) -> None:
    """Check a rule file; print every problem as FILE:LINE:COL (exit 1 if any)."""
    from safehold.rules import load_rules

    with _errors(as_json), _rule_errors(as_json):
        ruleset = load_rules(file)
        if as_json:
            _emit({"valid": True, "file": str(file), **ruleset.summary()})
            return
        n = len(ruleset.rules)
        shadow = len(ruleset.shadow_names())
        err.print(
            f"{_printable(file)}: valid, {n} rule{'s' if n != 1 else ''}"
            + (f" ({shadow} shadow)" if shadow else "")
            + f", mode {ruleset.mode}, default {ruleset.default}",
            soft_wrap=True,
        )


@rules_app.command("load")
def rules_load(
    file: Annotated[Path, typer.Argument(help="A YAML rule file.")],
    note: Annotated[str | None, typer.Option("--note", help="Why this version.")] = None,
    activate: Annotated[
        bool, typer.Option("--activate/--no-activate", help="Make it the active version.")
    ] = True,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Store a rule file as the tenant's next version (active unless --no-activate)."""
    from safehold.rules import RuleSets
    from safehold.rules.language import decode_source

    with _errors(as_json), _rule_errors(as_json):
        try:
            data = file.read_bytes()
        except OSError as e:
            from safehold.errors import InvalidValue

            raise InvalidValue(f"{file}: cannot read the rule file: {e.strerror or e}") from e
        source = decode_source(data, str(file))
        stored = RuleSets(_db()).save(
            source,
            tenant=tenant,
            created_by=_who(),
            note=note,
            activate=activate,
            filename=str(file),
        )
        if as_json:
            _emit(stored.to_dict(source=False))
            return
        state = "active" if stored.active else "stored, not active"
        err.print(
            f"tenant {_show(tenant)}: version {stored.version} ({state}), "
            f"{len(stored.rules.rules)} rules",
            markup=True,
        )


@rules_app.command("show")
def rules_show(
    version: VersionOpt = None,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Show a version's rules and source (default: the active version)."""
    from safehold.rules import RuleSets

    with _errors(as_json):
        sets = RuleSets(_db())
        stored = sets.active(tenant) if version is None else sets.get(version, tenant)
        if as_json:
            _emit(stored.to_dict())
            return
        out.print(_header(stored), markup=True)
        out.print(f"mode {stored.rules.mode}, default {stored.rules.default}")
        out.print(_rules_table(stored))
        out.print("source:")
        for line in stored.source.splitlines():
            out.print("  " + _printable(line))


@rules_app.command("list")
def rules_list(tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """List the tenant's stored versions, newest first."""
    from safehold.rules import RuleSets

    with _errors(as_json):
        versions = RuleSets(_db()).versions(tenant)
        if as_json:
            _emit({"tenant": tenant, "versions": [v.to_dict(source=False) for v in versions]})
            return
        if not versions:
            err.print(
                f"tenant {_printable(tenant)} has no stored rules (the built-in rules apply); "
                "store some with `safehold rules load FILE`"
            )
            return
        table = Table(header_style="bold")
        for col in ("version", "active", "rules", "created (UTC)", "by", "note"):
            table.add_column(col)
        for v in versions:
            table.add_row(
                str(v.version),
                "yes" if v.active else "",
                str(len(v.rules.rules)),
                v.created_at.strftime("%Y-%m-%d %H:%M") if v.created_at else "",
                _printable(v.created_by or ""),
                _printable(v.note or ""),
            )
        out.print(table)


@rules_app.command("activate")
def rules_activate(
    version: Annotated[int, typer.Argument(help="The version (0: the built-in rules).", min=0)],
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Make a stored version the active one (replicas follow within a second)."""
    from safehold.rules import RuleSets

    with _errors(as_json):
        stored = RuleSets(_db()).activate(version, tenant, by=_who())
        if as_json:
            _emit(stored.to_dict(source=False))
            return
        err.print(f"tenant {_printable(tenant)}: version {stored.version} is active")


@rules_app.command("hits")
def rules_hits(
    version: VersionOpt = None,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """How often each rule of a version fired (shadow rules: fired in dry-run)."""
    from safehold.rules import RuleSets

    with _errors(as_json):
        sets = RuleSets(_db())
        stored = sets.active(tenant) if version is None else sets.get(version, tenant)
        rows = sets.hit_table(stored)
        if as_json:
            _emit({"tenant": tenant, "version": stored.version, "rules": rows})
            return
        out.print(_header(stored), markup=True)
        out.print(_rules_table(stored, rows))
        if stored.id is None:
            err.print("hits of the built-in rules are not counted")


@rules_app.command("test")
def rules_test(
    file: Annotated[Path, typer.Argument(help="A YAML rule file to try.")],
    against: Annotated[
        str, typer.Option("--against", help="What to replay: 'recent' (stored events).")
    ] = "recent",
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="At most this many events, newest first.")
    ] = 1000,
    since: Annotated[
        str | None, typer.Option("--since", help="Only events younger than this, e.g. 24h, 7d.")
    ] = None,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Dry-run a rule file against recent events: what would fire, what would change."""
    from datetime import timedelta

    from safehold.errors import InvalidValue
    from safehold.rules import load_rules, parse_duration, replay

    with _errors(as_json), _rule_errors(as_json):
        if against != "recent":
            raise InvalidValue(f"--against must be 'recent', not {against[:40]!r}")
        ruleset = load_rules(file)
        age = timedelta(seconds=parse_duration(since)) if since else None
        report = replay(_db(), ruleset, tenant=tenant, limit=limit, since=age)
        if as_json:
            _emit(report.to_dict())
            return
        _print_report(report)


def _print_report(report: Any) -> None:
    window = f" since {report.since:%Y-%m-%d %H:%M} UTC" if report.since else ""
    out.print(f"replayed {report.events:,} recent events{window} (limit {report.limit:,})")
    table = Table(header_style="bold")
    for col in ("rule", "fired", "share"):
        table.add_column(col)
    for name, n in report.fired.items():
        table.add_row(_printable(name), f"{n:,}", _share(n, report.events))
    for name, n in report.shadow.items():
        table.add_row(_printable(name) + " (shadow)", f"{n:,}", _share(n, report.events))
    out.print(table)
    before = ", ".join(f"{k} {v:,}" for k, v in report.before.items()) or "-"
    after = ", ".join(f"{k} {v:,}" for k, v in report.decisions.items()) or "-"
    out.print(f"decisions before: {before}")
    out.print(f"decisions after:  {after}")
    if not report.changed:
        out.print("no decision would change")
        return
    out.print(f"{report.changed:,} decisions would change:")
    for change, n in report.changes.items():
        out.print(f"  {change}: {n:,}")
    out.print("examples (event id: old -> new, rules):")
    for ex in report.examples:
        rules = ", ".join(ex["rules"]) or "(default)"
        out.print(f"  {ex['event_id']}: {ex['old']} -> {ex['new']}, {_printable(rules)}")


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"
