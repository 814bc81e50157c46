"""The JSON API under /api/v1 (being written)."""

from __future__ import annotations

from fastapi import FastAPI

from digest.app import App


def create_api(app: App) -> FastAPI:
    """The API as its own FastAPI app, mounted at /api/v1 with its own OpenAPI."""
    api = FastAPI(title="digest API", docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json")
    api.state.digest = app
    return api
