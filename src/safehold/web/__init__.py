"""HTTP service: a thin FastAPI shell over the library."""

from safehold.web.app import create_app

__all__ = ["create_app"]
