"""Capture for other frameworks: Dask (``dask``), PyTorch (``torch``), agent tools (``agent``).

Each module imports its framework, so none is imported by ``import provwh``: ``flowcept_torch``
and ``agent_flowcept_task`` load on first use, and ``Flowcept(interceptors=["dask"])`` loads
the Dask adapter when it starts.
"""
