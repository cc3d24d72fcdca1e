"""The review console: server-rendered pages (Jinja2 + htmx) under ``/ui``."""
