"""Warehouse tests (a package, so that its conftest does not take the module name ``conftest``)."""
