"""Errors the warehouse reports to users: each message says what to do."""

from __future__ import annotations


class WarehouseError(Exception):
    """Base class: the CLI prints the message on one line and exits 1."""


class SchemaError(WarehouseError):
    """A database's schema is not the one this provwh writes (behind, ahead, or foreign)."""


class LoadError(WarehouseError):
    """A batch could not be loaded (after retries, for an unavailable database)."""


class Aborted(WarehouseError):
    """Loading was stopped (consumer stopped without draining) while a batch waited."""
