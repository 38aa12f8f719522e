"""``provwh serve``: the REST API (Flowcept 1.0.3's contract, under ``/api/v1``), the
OpenLineage receiver (``POST /api/v1/lineage``) and a server-rendered web UI (``/``).

- ``app``: the ASGI application (FastAPI) around one ``DBAPI``: errors as ``{"detail": ...}``,
  the token check on writes, the static files;
- ``api``: the REST routes (health, campaigns, workflows, tasks, lineage, stats), with
  ``api_objects`` (objects, datasets, models) and ``api_cards`` (provenance cards);
  ``records``: the data they answer (envelopes, campaigns, paging, attachments);
- ``docs``: the interactive API docs at ``/docs`` (Swagger UI, vendored in ``static/``);
- ``receiver``: OpenLineage run events into the warehouse through the importer;
- ``ui`` and ``html``: the pages;
- ``server``: uvicorn, stopping on SIGINT / SIGTERM.

Data is read only through ``provwh.query`` (every request value reaches SQL as a bound
parameter there) and written only through the warehouse's ingest (the receiver) or the
DBAPI's deletes (with the token). FastAPI and uvicorn come with the ``serve`` extra.
"""
