"""Running the application: the database and warehouse targets of a command's options, and
uvicorn, which stops on SIGINT / SIGTERM (requests in flight finish, the database closes)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from provwh.core.config import Settings

TOKEN_ENV = "PROVWH_SERVE_TOKEN"
LINEAGE_TOKEN_ENV = "PROVWH_LINEAGE_TOKEN"


class ServeError(Exception):
    """The server cannot start as asked (a user-facing message)."""


# how the server uses its database (``provwh serve --idle-release / --max-hold / --connections``)
IDLE_RELEASE = 1.0  # DuckDB: seconds without a request before the file is closed
MAX_HOLD = 30.0  # DuckDB: seconds the file is held at most before a pause for other processes
CONNECTIONS = 8  # PostgreSQL: connections at most, one per request in progress


def open_database(
    settings: Settings,
    duckdb: str | None,
    postgres: str | None,
    idle_release: float = IDLE_RELEASE,
    max_hold: float = MAX_HOLD,
    connections: int = CONNECTIONS,
) -> tuple[Any, list[Any]]:
    """The DBAPI the server reads, and the warehouse target the receiver loads into: the
    DuckDB file or the PostgreSQL database named, else the settings' (PostgreSQL when it is
    enabled, else the DuckDB file).

    A DuckDB file is held open while requests keep coming, and closed ``idle_release`` s
    after the last, or when another process waits for it, or after ``max_hold`` s held (for
    ``duckhold.HeldFile``'s pause); requests read concurrently. PostgreSQL: up to
    ``connections`` requests run at once, each on a connection of its own."""
    from provwh.query.api import DBAPI

    if duckdb and postgres:
        raise ServeError("serve reads one database: pass --duckdb PATH or --postgres URL")
    migrate = bool(settings.get("databases.postgres.migrate_on_startup"))
    if not duckdb and not postgres:
        if settings.postgres_enabled:
            postgres = settings.postgres_url
        elif settings.duckdb_enabled:
            duckdb = settings.duckdb_path
        else:
            raise ServeError("no database enabled: pass --duckdb PATH or --postgres URL")
    if duckdb:
        from provwh.warehouse.duck import DuckTarget

        # the server's queries cannot read files (read_csv, read_json...) nor reach the network
        db = DBAPI.from_duckdb(
            duckdb, external_access=False, idle_release=idle_release, max_hold=max_hold
        )
        return db, [DuckTarget(duckdb)]
    from provwh.warehouse.pg import PgTarget

    return (
        DBAPI.from_postgres(postgres, migrate_on_startup=migrate, connections=connections),
        [PgTarget(postgres, migrate_on_startup=migrate)],
    )


def token_of(given: str | None, env: str) -> str | None:
    return given or os.environ.get(env) or None


def _stopping_cleanly(base: type, on_exit: Callable[[], None] | None = None) -> type:
    """uvicorn's server, which after its graceful shutdown on a signal does not raise the
    signal again (recent uvicorn does, so that the process dies of it): ``provwh serve`` then
    says it stopped and exits 0. ``on_exit`` runs on the signal: it ends the live streams,
    which the graceful shutdown would otherwise wait for forever."""

    class Server(base):  # type: ignore[misc, valid-type]
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            if on_exit is not None:
                on_exit()
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()

    return Server


def run(
    db: Any,
    targets: list[Any],
    host: str = "127.0.0.1",
    port: int = 8008,
    token: str | None = None,
    lineage_token: str | None = None,
    announce: Any = print,
) -> None:
    """Serve until SIGINT / SIGTERM."""
    import uvicorn

    from provwh.serve.app import create_app

    app = create_app(db, token=token, lineage_token=lineage_token, lineage_targets=targets)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = _stopping_cleanly(uvicorn.Server, app.state.hub.stop_soon)(config)
    sock = listen(host, port)
    port = sock.getsockname()[1]
    writes = "writes with the token" if token else "read-only"
    shown = f"[{host}]" if ":" in host else host
    announce(
        f"provwh serve: http://{shown}:{port}/ ({db.backend.name}; {writes};"
        f" API /api/v1, OpenAPI /openapi.json; Ctrl-C stops)",
        flush=True,
    )
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:  # uvicorn's startup failed; it logged why
        raise ServeError(f"the server did not start (exit {exc.code}; see above)") from None
    finally:
        sock.close()
    announce("provwh serve: stopped", flush=True)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: a free port), else ServeError saying why."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
