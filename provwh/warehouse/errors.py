"""Errors the warehouse reports to users: each message says what to do."""

from __future__ import annotations


class WarehouseError(Exception):
    """Base class: the CLI prints the message on one line and exits 1."""


class SchemaError(WarehouseError):
    """A database's schema is not the one this provwh writes (behind, ahead, or foreign)."""


class CannotConnect(WarehouseError):
    """A database refuses the connection for a reason waiting will not fix (no such database,
    role or password): reported at once, not retried as if the server were down."""


class LoadError(WarehouseError):
    """A batch could not be loaded (after retries, for an unavailable database)."""


class Aborted(WarehouseError):
    """Loading was stopped (a consumer stopped without draining, or gave up at stop).

    ``stats``: what the interrupted ``load_files`` had committed (a ``LoadStats``), if any.
    """

    stats = None


class Unavailable(LoadError):
    """A database stayed unreachable past the stop timeout: loading stopped, batches kept.

    ``at_stop``: the message says all (the capture's stop line shows it as it is).
    """

    def __init__(self, message: str, at_stop: bool = False) -> None:
        super().__init__(message)
        self.at_stop = at_stop
