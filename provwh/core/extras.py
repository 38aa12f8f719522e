"""Optional dependencies: which extra installs a module, and the error that says so."""

from __future__ import annotations

import importlib
from types import ModuleType

# top-level module -> the extra of provwh that installs it (pyproject.toml)
EXTRA_OF_MODULE = {
    "alembic": "postgres",
    "psycopg": "postgres",
    "pandas": "pandas",
    "rich": "report",
    "matplotlib": "report",
    "prov": "prov",
    "redis": "redis",
    "dask": "dask",
    "distributed": "dask",
    "mcp": "agents",
    "torch": "torch",
    "pynvml": "gpu",
    "fastapi": "serve",
    "uvicorn": "serve",
    "starlette": "serve",
    "mlflow": "mlflow",
    "tensorboardX": "tensorboard",
}


class MissingExtra(ModuleNotFoundError):
    """An optional package is missing; the message names the extra that installs it."""

    def __init__(self, what: str, extra: str, module: str) -> None:
        super().__init__(
            f"{what} needs the '{extra}' extra: pip install 'provwh[{extra}]' "
            f"(no module named '{module}')",
            name=module,
        )
        self.what, self.extra, self.module = what, extra, module


def extra_for(exc: BaseException) -> str | None:
    """The extra that would have avoided ``exc`` (a ModuleNotFoundError), if one would."""
    if isinstance(exc, MissingExtra):
        return exc.extra
    name = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    return EXTRA_OF_MODULE.get((name or "").partition(".")[0])


def require_extra(module: str, extra: str | None = None, what: str = "this feature") -> ModuleType:
    """Import ``module``; if it (or what it needs) is missing, raise ``MissingExtra``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = (exc.name or module).partition(".")[0]
        extra = extra or EXTRA_OF_MODULE.get(missing)
        if extra is None:
            raise
        raise MissingExtra(what, extra, missing) from exc
