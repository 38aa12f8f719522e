"""The files provwh ships beside its code: SQL (views, lineage) and the alembic migrations.

They live in the project's top-level ``sql/`` and ``migrations/`` folders and are installed as
the packages ``provwh.sql`` and ``provwh.migrations`` (``package-dir`` in pyproject.toml), so
``importlib.resources`` finds them the same way from a wheel, an sdist build and an editable
checkout. ``missing()`` lets ``provwh check`` say when an installation lacks any of them.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

SQL_PACKAGE = "provwh.sql"
MIGRATIONS_PACKAGE = "provwh.migrations"
LINEAGE_SQL = "data_edges.sql"


class ResourceMissing(FileNotFoundError):
    """A file provwh ships is not where the installation should have put it."""


def sql_dir() -> Traversable:
    """The folder of the SQL files (``views/`` inside it)."""
    return _package_dir(SQL_PACKAGE)


def sql_text(name: str) -> str:
    """One SQL file's text, e.g. ``data_edges.sql`` or ``views/v_tasks.sql``."""
    path = sql_dir().joinpath(*name.split("/"))
    if not path.is_file():
        raise ResourceMissing(f"provwh's SQL file {name} is missing from {sql_dir()}: "
                              "reinstall provwh")  # fmt: skip
    return path.read_text(encoding="utf-8")


def migrations_dir() -> Path:
    """The alembic script folder, as a real folder (alembic reads it from the file system)."""
    folder = _package_dir(MIGRATIONS_PACKAGE)
    if not isinstance(folder, Path) or not folder.joinpath("env.py").is_file():
        raise ResourceMissing(
            f"provwh's migrations ({folder}) are missing or not a plain folder: reinstall provwh"
        )
    return folder


def missing() -> list[str]:
    """What an installation lacks of the shipped files (empty when complete)."""
    problems = []
    for what, check in (
        ("lineage SQL", lambda: sql_text(LINEAGE_SQL)),
        ("views", lambda: _require_views()),
        ("migrations", lambda: _require_migrations()),
    ):
        try:
            check()
        except (ResourceMissing, ModuleNotFoundError) as exc:
            problems.append(f"{what}: {exc}")
    return problems


def _require_views() -> None:
    views = sql_dir().joinpath("views")
    if not views.is_dir() or not any(p.name.endswith(".sql") for p in views.iterdir()):
        raise ResourceMissing(f"no view SQL files in {views}")


def _require_migrations() -> None:
    versions = migrations_dir().joinpath("versions")
    if not any(p.name.endswith(".py") and p.name[0].isdigit() for p in versions.iterdir()):
        raise ResourceMissing(f"no migration scripts in {versions}")


def _package_dir(package: str) -> Traversable:
    try:
        return files(package)
    except ModuleNotFoundError as exc:
        raise ResourceMissing(f"the package {package} is not installed: reinstall provwh") from exc
