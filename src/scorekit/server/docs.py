"""/docs (Swagger UI) and /redoc with every asset served by this server: no CDN, works air-gapped.

The Swagger UI and ReDoc bundles come from the `fastapi-offline` package (MIT), or from `server/static/` when
they are vendored there.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")
STATIC_PATH = "/static-docs"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
LOCAL_LOGO = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"


def assets_dir() -> Path | None:
    own = Path(__file__).parent / "static"
    if all((own / name).exists() for name in ASSETS):
        return own
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(list(spec.submodule_search_locations)[0]) / "static"
        if all((folder / name).exists() for name in ASSETS):
            return folder
    return None


def install(app: FastAPI, title: str) -> bool:
    """Add /docs, /redoc and the static assets; False (no docs routes) when the assets are missing."""
    folder = assets_dir()
    if folder is None:
        return False
    redoc_js = (folder / "redoc.standalone.js").read_text(encoding="utf-8").replace(REDOC_LOGO, LOCAL_LOGO)

    @app.get(f"{STATIC_PATH}/redoc.standalone.js", include_in_schema=False)
    async def redoc_bundle() -> Response:
        # ReDoc's sidebar shows a logo fetched from its CDN: point it at an inline image instead.
        return Response(redoc_js, media_type="text/javascript")

    app.mount(STATIC_PATH, StaticFiles(directory=folder), name="static-docs")
    has_favicon = (folder / "favicon.png").exists()

    def prefix(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{title} - Swagger UI",
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_js_url=f"{root}{STATIC_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_PATH}/favicon.png" if has_favicon else "data:,",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from the online validator
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_PATH}/favicon.png" if has_favicon else "data:,",
            with_google_fonts=False,
        )

    return True
