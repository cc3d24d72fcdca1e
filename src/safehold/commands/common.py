"""What every ``safehold`` sub-command shares: consoles, ``--json``, errors, the database.

Sub-command groups live in their own modules (``safehold.commands.<group>``) and are
registered on the one Typer app in ``safehold.cli``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from safehold.errors import SafeholdError

# Markup is off by default: names, paths and messages come from untrusted input, and
# a "[/]" in them must print as such. Strings with markup pass ``markup=True`` and
# escape what they interpolate (``_show``).
err = Console(stderr=True, highlight=False, markup=False, emoji=False)
out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _printable(text: object) -> str:
    """``text`` with control and bidi-override characters shown as escapes, so a hostile
    name or path cannot move the cursor, recolour or reorder the terminal."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", str(text))


def _show(text: object) -> str:
    """Untrusted text for a string printed with ``markup=True``."""
    return escape(_printable(text))


JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


class _State:
    db_url: str | None = None


def _db() -> Any:
    from safehold.store.db import Database

    return Database(_State.db_url)


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def _fail(message: str, *, as_json: bool, code: str = "error", exit_code: int = 2) -> NoReturn:
    if as_json:
        _emit({"error": {"code": code, "message": message}})
    else:
        err.print(f"[bold red]error:[/] {_show(message)}", markup=True, highlight=False)
    raise typer.Exit(exit_code)


@contextmanager
def _errors(as_json: bool = False) -> Iterator[None]:
    try:
        yield
    except SafeholdError as e:
        _fail(e.message, as_json=as_json, code=e.code)
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    except BrokenPipeError:
        sys.stderr.close()
        raise typer.Exit(0) from None
    except OSError as e:  # an output or state file that cannot be written, a database path ...
        where = f"{e.filename}: " if e.filename else ""
        _fail(f"{where}{e.strerror or e}", as_json=as_json, code="os_error")
    except Exception as e:
        from sqlalchemy.exc import SQLAlchemyError

        if not isinstance(e, SQLAlchemyError):
            raise
        first = (str(getattr(e, "orig", None) or e).strip().splitlines() or [""])[0]
        _fail(
            f"database error ({type(e).__name__}): {first[:300]}",
            as_json=as_json,
            code="database_error",
        )


def _who() -> str:
    return f"cli:{os.environ.get('USER') or os.environ.get('LOGNAME') or 'unknown'}"
