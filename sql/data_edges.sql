-- Data lineage edges for the tasks in lineage_pending (provwh/warehouse/lineage.py runs these
-- statements in one transaction, in this order; the same SQL on PostgreSQL and DuckDB).
--
-- The rule (docs/query-guide.md, Lineage): a value C used links C to ONE producer P ('data' edge P -> C),
-- the LATEST task that generated that value and ended no later than C started:
--   * values match on task_values.match_hash (NULL never links: None, booleans, 0, 1, -1,
--     one-character strings, empty containers; see provwh/warehouse/values.py);
--   * a path- or id-like value (match_hash = value_hash: it matched on the value alone) links
--     across workflows; any other value (matched on leaf key and value) only inside the
--     consumer's campaign (its workflow when it has no campaign);
--   * a task that used a value under the same key it generated it under passed it through and
--     is not its producer (a model's dtype or device on every forward call); a path or id it
--     passes on is (it may have rewritten the file);
--   * an unknown end time ranks a producer before all others; an unknown start time lets a
--     consumer take the latest producer of all; a task is never its own producer.
-- Each use costs one edge, so the edges grow with the tasks, not with their square.

-- 1. The stored consumers of a pending task (a merged one) are derived again, and so are
-- those a late producer may now feed.
INSERT INTO lineage_pending (task_id)
SELECT DISTINCT e.dst_task_id
FROM task_edges e
JOIN lineage_pending lp ON lp.task_id = e.src_task_id
WHERE e.kind = 'data'
  AND NOT EXISTS (SELECT 1 FROM lineage_pending q WHERE q.task_id = e.dst_task_id);

WITH producers AS MATERIALIZED (
    SELECT g.task_id, g.match_hash, g.value_hash, p.ended_at,
        coalesce(p.campaign_id, p.workflow_id, '') AS scope
    FROM lineage_pending lp
    JOIN task_values g
      ON g.task_id = lp.task_id AND g.direction = 'generated' AND g.match_hash IS NOT NULL
    JOIN tasks p ON p.task_id = g.task_id
    WHERE g.match_hash = g.value_hash OR NOT EXISTS (
        SELECT 1 FROM task_values x
        WHERE x.task_id = g.task_id AND x.direction = 'used' AND x.match_hash = g.match_hash)
),
stored_uses AS MATERIALIZED (
    SELECT u.task_id, u.match_hash, u.task_started_at
    FROM task_values u
    WHERE u.direction = 'used' AND u.match_hash IN (SELECT match_hash FROM producers)
      AND NOT EXISTS (SELECT 1 FROM lineage_pending q WHERE q.task_id = u.task_id)
)
INSERT INTO lineage_pending (task_id)
SELECT DISTINCT u.task_id
FROM producers g
JOIN stored_uses u ON u.match_hash = g.match_hash
JOIN tasks c ON c.task_id = u.task_id
WHERE (g.ended_at IS NULL OR u.task_started_at IS NULL OR g.ended_at <= u.task_started_at)
  AND (g.match_hash = g.value_hash
       OR g.scope = coalesce(c.campaign_id, c.workflow_id, ''));

-- 2. The pending tasks' data edges are derived whole again.
DELETE FROM task_edges
WHERE kind = 'data' AND dst_task_id IN (SELECT task_id FROM lineage_pending);

-- 3. Each value a pending task used -> its latest producer. Producers and uses of one value
-- (in one scope) are merged in time order; a use takes the producer counted last before it.
WITH used_rows AS MATERIALIZED (
    SELECT u.task_id, u.match_hash, u.value_hash, u.task_started_at
    FROM lineage_pending lp
    JOIN task_values u
      ON u.task_id = lp.task_id AND u.direction = 'used' AND u.match_hash IS NOT NULL
),
producers AS MATERIALIZED (
    SELECT g.task_id, g.match_hash,
        CASE WHEN g.match_hash = g.value_hash THEN ''
             ELSE coalesce(p.campaign_id, p.workflow_id, '') END AS scope,
        coalesce(p.ended_at, TIMESTAMP '0001-01-01 00:00:00') AS moment
    FROM task_values g
    JOIN tasks p ON p.task_id = g.task_id
    WHERE g.direction = 'generated'
      AND g.match_hash IN (SELECT match_hash FROM used_rows)
      AND (g.match_hash = g.value_hash OR NOT EXISTS (
            SELECT 1 FROM task_values x
            WHERE x.task_id = g.task_id AND x.direction = 'used' AND x.match_hash = g.match_hash))
),
linked_rows AS MATERIALIZED (  -- only values someone produced: most uses link nothing
    SELECT * FROM used_rows WHERE match_hash IN (SELECT match_hash FROM producers)
),
uses AS MATERIALIZED (
    SELECT u.task_id, u.match_hash,
        CASE WHEN u.match_hash = u.value_hash THEN ''
             ELSE coalesce(c.campaign_id, c.workflow_id, '') END AS scope,
        coalesce(u.task_started_at, TIMESTAMP '9999-12-31 00:00:00') AS moment
    FROM linked_rows u
    LEFT JOIN tasks c ON c.task_id = u.task_id
),
ranked AS (
    SELECT task_id, match_hash, scope,
        row_number() OVER (PARTITION BY match_hash, scope ORDER BY moment, task_id) AS n
    FROM producers
),
timeline AS (
    SELECT task_id, match_hash, scope, kind,
        sum(1 - kind) OVER (PARTITION BY match_hash, scope ORDER BY moment, kind, task_id
                            ROWS UNBOUNDED PRECEDING) AS n
    FROM (
        SELECT task_id, match_hash, scope, moment, 0 AS kind FROM producers
        UNION ALL
        SELECT task_id, match_hash, scope, moment, 1 AS kind FROM uses
    ) AS events
)
INSERT INTO task_edges (src_task_id, dst_task_id, kind)
SELECT DISTINCT r.task_id, t.task_id, 'data'
FROM timeline t
JOIN ranked r ON r.match_hash = t.match_hash AND r.scope = t.scope AND r.n = t.n
WHERE t.kind = 1 AND r.task_id <> t.task_id
ON CONFLICT DO NOTHING
