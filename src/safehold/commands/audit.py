"""`safehold audit` commands (placeholder until its helper lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands and groups to the main app."""
