"""The interactive API docs at ``/docs``: Swagger UI over ``/openapi.json``, its script and
style vendored in ``static/vendor/swagger-ui/`` and served by provwh (``/static/...``), so the
page works on a node without internet."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

router = APIRouter()

VENDOR = "/static/vendor/swagger-ui"
# Swagger UI would ask validator.swagger.io to check the spec: nothing leaves the server
PARAMETERS = {"validatorUrl": None, "deepLinking": True, "defaultModelsExpandDepth": 0}


@router.get("/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    """Swagger UI, every file it loads from this server."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="provwh API",
        swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui.css",
        swagger_favicon_url=f"{VENDOR}/favicon-32x32.png",
        swagger_ui_parameters=PARAMETERS,
    )
