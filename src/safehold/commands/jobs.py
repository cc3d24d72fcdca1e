"""``safehold worker`` (the job worker in the foreground) and ``safehold webhooks``
(list deliveries, replay one or every dead one)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer
from rich.table import Table

from safehold.commands.common import JsonOpt, _db, _emit, _errors, _fail, _printable, _who, err, out

webhooks_app = typer.Typer(
    help="Webhook deliveries: list them, replay one or every dead one.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``safehold worker`` and the ``webhooks`` group to the main app."""
    app.command("worker")(worker_cmd)
    app.add_typer(webhooks_app, name="webhooks")


def worker_cmd(
    workers: Annotated[
        int, typer.Option("--workers", "-w", help="Worker threads (jobs run at once).", min=1)
    ] = 2,
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue",
            help="Queue URL (default: SAFEHOLD_QUEUE_URL, else the queue file beside the "
            "SQLite database).",
        ),
    ] = None,
) -> None:
    """Run the job worker in the foreground until SIGTERM or Ctrl-C (running jobs finish).

    Use it with `safehold serve --no-worker`: rule actions then run here."""
    from safehold.actions.worker import open_queue, run_worker
    from safehold.logs import configure_logging

    configure_logging()
    with _errors(False):
        db = _db()
        jobs = open_queue(db, queue)
        stop = threading.Event()

        def _stop(signum: int, _frame: Any) -> None:
            if stop.is_set():  # a second signal: leave now
                raise KeyboardInterrupt
            err.print(f"{signal.Signals(signum).name}: stopping after the running jobs ...")
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        started = threading.Event()
        err.print(
            f"safehold worker: {workers} thread{'s' if workers != 1 else ''} on "
            f"{_printable(jobs.url)} (queue {_printable(jobs.huey.name)}; database: "
            f"{_printable(db.describe())})"
        )
        run_worker(db, jobs, workers=workers, stop=stop, started=started)
        err.print("worker stopped")


def _webhooks() -> Any:
    from safehold.actions.webhooks import Webhooks
    from safehold.actions.worker import open_queue
    from safehold.audit import AuditLog

    db = _db()
    return Webhooks(db, open_queue(db), AuditLog(db))


@webhooks_app.command("list")
def webhooks_list(
    status: Annotated[
        str | None,
        typer.Option(
            "--status", help="Only deliveries in this state (pending, retrying, delivered, dead)."
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Webhook deliveries, newest first."""
    with _errors(as_json):
        items = _webhooks().list(tenant=tenant, status=status, limit=limit)
        if as_json:
            _emit({"deliveries": [d.to_dict() for d in items]})
            return
        if not items:
            err.print("no deliveries")
            return
        table = Table(header_style="bold")
        for col in ("id", "status", "attempts", "type", "rule", "url", "last error", "next (UTC)"):
            table.add_column(col)
        for d in items:
            nxt = d.next_attempt_at.isoformat()[:19].replace("T", " ") if d.next_attempt_at else "-"
            table.add_row(
                str(d.id),
                d.status,
                str(d.attempts),
                d.type,
                _printable(d.rule or "-"),
                _printable(d.url),
                _printable(d.last_error or "-"),
                nxt if d.status in ("retrying", "pending") else "-",
            )
        out.print(table)


@webhooks_app.command("replay")
def webhooks_replay(
    delivery_id: Annotated[
        int | None, typer.Argument(help="The delivery to send again.", min=1)
    ] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Replay every dead delivery.")] = False,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="With --dead: only this tenant's.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a delivery again from the start of its retry schedule (audited); a running
    worker (`safehold serve` or `safehold worker`) delivers it."""
    with _errors(as_json):
        if (delivery_id is None) == (not dead):
            _fail("give a delivery ID or --dead (not both)", as_json=as_json, code="invalid_value")
        hooks = _webhooks()
        if dead:
            ids = hooks.replay_dead(tenant=tenant, by=_who())
            if as_json:
                _emit({"replayed": ids})
            else:
                out.print(f"replayed {len(ids)} dead deliver{'y' if len(ids) == 1 else 'ies'}")
            return
        assert delivery_id is not None
        info = hooks.replay(delivery_id, by=_who())
        if as_json:
            _emit({"replayed": [info.id], "delivery": info.to_dict()})
        else:
            out.print(f"delivery {info.id} queued again ({_printable(info.url)})")
