"""The interactive API docs at ``/docs``: Swagger UI served whole by provwh (its vendored
script, style and icon, with their licence), rendering every route of ``/openapi.json`` in a
real headless Chromium that can reach nothing but the server."""

from __future__ import annotations

import re
from importlib import resources

from serve_helpers import _chromium

from provwh.version import __version__

VENDOR = "/static/vendor/swagger-ui"
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


def vendored(name: str) -> bytes:
    root = resources.files("provwh.serve").joinpath("static", "vendor", "swagger-ui")
    return root.joinpath(name).read_bytes()


def test_docs_page_loads_only_the_servers_files(parity_server):
    s = parity_server
    page = s.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls == [f"{VENDOR}/swagger-ui.css", f"{VENDOR}/favicon-32x32.png",
                    f"{VENDOR}/swagger-ui-bundle.js"]  # fmt: skip
    assert "url: '/openapi.json'" in page.text
    assert '"validatorUrl": null' in page.text  # no spec sent to validator.swagger.io
    assert "http://" not in page.text and "https://" not in page.text
    files = {
        "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
        "swagger-ui.css": "text/css; charset=utf-8",
        "favicon-32x32.png": "image/png",
        "LICENSE": "text/plain; charset=utf-8",
    }
    for name, media in files.items():
        resp = s.get(f"{VENDOR}/{name}")
        assert resp.status_code == 200, name
        assert (resp.headers["content-type"], resp.content) == (media, vendored(name))
    assert b"Apache License" in vendored("LICENSE")
    assert len(vendored("swagger-ui-bundle.js")) > 1_000_000
    assert s.get("/openapi.json").json()["info"]["title"] == "provwh"
    assert "/docs" not in s.get("/openapi.json").json()["paths"]


def test_docs_render_every_route_in_chromium_without_internet(parity_server, tmp_path):
    dom = _chromium(
        ["--virtual-time-budget=15000", OFFLINE, "--dump-dom", parity_server.url + "/docs"],
        tmp_path / "profile",
    ).stdout
    spec = parity_server.get("/openapi.json").json()
    shown = set(re.findall(r'data-path="([^"]+)"', dom))
    assert shown == set(spec["paths"])
    version = f'<pre class="version"> {__version__} </pre>'
    assert f'<h1 class="title">provwh<span><small>{version}' in dom
    assert not re.findall(r'(?:src|href)="(https?:[^"]+)"', dom)  # nothing from elsewhere
    assert "/api/v1/objects/{object_id}/versions/{version}/download" in shown
