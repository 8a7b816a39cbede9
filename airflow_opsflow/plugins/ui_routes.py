"""The Ops view's pages under ``/opsflow/ui/``: one HTML page, its script, style and icon, all shipped in the
wheel (no asset from the internet). The page holds no data: it draws what opsflow's JSON API answers, and that
API checks Airflow's authentication and the user's DAG permissions on every call."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

UI_DIR = Path(__file__).with_name("ui")


def mount_ui(app: FastAPI) -> None:
    """Adds ``/ui/`` (the page) and ``/ui/static/`` (its files) to opsflow's app."""

    @app.get("/ui", include_in_schema=False)
    def ui_slash(request: Request) -> RedirectResponse:
        # Relative links in the page resolve against the trailing slash.
        return RedirectResponse(f"{request.scope.get('root_path', '')}/ui/")

    @app.get("/ui/", include_in_schema=False)
    def ui_page() -> FileResponse:
        return FileResponse(UI_DIR / "index.html", media_type="text/html",
                            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    app.mount("/ui/static", StaticFiles(directory=UI_DIR, html=False), name="opsflow-ui")
