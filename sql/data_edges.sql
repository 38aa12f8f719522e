-- Data lineage edges for the tasks in lineage_pending (provwh/warehouse/lineage.py).
--
-- A task P feeds a task C ('data' edge P -> C) when a value P generated is used by C:
--   * they share a task_values.match_hash (NULL never links: None, booleans, 0, 1, -1,
--     one-character strings, empty containers; paths, file names and identifiers link on
--     the value alone, other values on (leaf key, value) -- see provwh/warehouse/values.py),
--   * P is not C,
--   * P did not end after C started (when both times are known).
-- Pending tasks are matched on both sides, so the order tasks arrive in does not matter. An
-- edge is looked for once: from its consumer when that is pending, else from its producer.
-- C's start time is read from its value rows (task_started_at), P's end from its task row.
-- Portable: the same statement runs on PostgreSQL and DuckDB.
INSERT INTO task_edges (src_task_id, dst_task_id, kind)
SELECT DISTINCT pairs.src, pairs.dst, 'data'
FROM (
    SELECT g.task_id AS src, u.task_id AS dst, u.task_started_at AS dst_started
    FROM lineage_pending lp
    JOIN task_values u
      ON u.task_id = lp.task_id AND u.direction = 'used' AND u.match_hash IS NOT NULL
    JOIN task_values g
      ON g.match_hash = u.match_hash AND g.direction = 'generated'
    UNION ALL
    SELECT g.task_id AS src, u.task_id AS dst, u.task_started_at AS dst_started
    FROM lineage_pending lp
    JOIN task_values g
      ON g.task_id = lp.task_id AND g.direction = 'generated' AND g.match_hash IS NOT NULL
    JOIN task_values u
      ON u.match_hash = g.match_hash AND u.direction = 'used'
    WHERE NOT EXISTS (SELECT 1 FROM lineage_pending c WHERE c.task_id = u.task_id)
) AS pairs
JOIN tasks p ON p.task_id = pairs.src
WHERE pairs.src <> pairs.dst
  AND (p.ended_at IS NULL OR pairs.dst_started IS NULL OR p.ended_at <= pairs.dst_started)
ON CONFLICT DO NOTHING
