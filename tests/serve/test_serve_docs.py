"""docs/ui.md stays in step with the server: every API route is in its table, every image it
shows exists, and the README's opening commands mention ``provwh serve``."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UI_MD = (ROOT / "docs" / "ui.md").read_text()


def test_every_api_route_is_documented(tmp_path):
    from provwh.query.api import DBAPI
    from provwh.serve.app import create_app

    spec = create_app(DBAPI.from_duckdb(tmp_path / "w.duckdb")).openapi()
    documented = set(re.findall(r"^\| `(?:GET|POST|DELETE) (.+?)` \|", UI_MD, flags=re.M))
    expanded = set()
    for entry in documented:  # "/tasks/{id}/upstream`, `/downstream": both routes
        first, *more = re.split(r"`, `", entry)
        expanded.add(first)
        expanded |= {first.rsplit("/", 1)[0] + m if m.count("/") == 1 else m for m in more}
    routes = {re.sub(r"\{[a-z_]+\}", "{id}", p.removeprefix("/api/v1")) for p in spec["paths"]}
    expanded = {re.sub(r"\{[a-z_]+\}", "{id}", p) for p in expanded}
    assert routes == expanded


def test_the_images_exist_and_the_readme_mentions_serve():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", UI_MD)
    assert images == ["images/ui-overview.png", "images/ui-workflow.png", "images/ui-task.png"]
    for image in images:
        assert (ROOT / "docs" / image).read_bytes().startswith(b"\x89PNG")
    readme = (ROOT / "README.md").read_text()
    opening = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    assert "provwh serve" in opening and "'provwh[serve]'" in opening
