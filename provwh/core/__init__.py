"""The ground floor: what every other part of provwh stands on, and that imports no other part.

``model`` (records and their fields), ``config`` (settings), ``serialize`` (the JSON codec of
records and batch files), ``ids`` (ids, and the running task and workflow), ``redact``
(secrets out of records and log lines), ``host`` (who runs where).
"""
