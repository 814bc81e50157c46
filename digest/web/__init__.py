"""The web app: FastAPI over the same `App` the CLI builds. See docs/web.md."""

from __future__ import annotations

from digest.web.app import create_app

__all__ = ["create_app"]
