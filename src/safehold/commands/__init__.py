"""Sub-command groups of the ``safehold`` CLI (see ``safehold.cli``)."""
