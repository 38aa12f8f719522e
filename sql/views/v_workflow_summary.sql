-- v_workflow_summary: one row per workflow (with a record, or named by its tasks): its
-- record's fields, its tasks by status, its duration, the time its tasks took, and its hosts.
CREATE OR REPLACE VIEW v_workflow_summary AS
WITH ids AS (
    SELECT workflow_id FROM workflows
    UNION
    SELECT workflow_id FROM tasks WHERE workflow_id IS NOT NULL
),
tk AS (
    SELECT
        t.workflow_id,
        min(t.campaign_id COLLATE "C") AS campaign_id,
        count(*) AS task_count,
        CAST(sum(CASE WHEN t.status = 'FINISHED' THEN 1 ELSE 0 END) AS BIGINT) AS finished_count,
        CAST(sum(CASE WHEN t.status = 'ERROR' THEN 1 ELSE 0 END) AS BIGINT) AS error_count,
        CAST(sum(CASE WHEN t.status = 'RUNNING' THEN 1 ELSE 0 END) AS BIGINT) AS running_count,
        CAST(sum(CASE WHEN t.status IN ('FINISHED', 'ERROR', 'RUNNING') THEN 0 ELSE 1 END)
            AS BIGINT) AS other_count,
        count(DISTINCT t.activity_id) AS activity_count,
        count(DISTINCT t.hostname) AS host_count,
        min(t.started_at) AS first_task_started_at,
        max(t.ended_at) AS last_task_ended_at,
        CAST(sum(
            CAST(ROUND(date_part('epoch', t.ended_at) * 1000000) AS BIGINT)
            - CAST(ROUND(date_part('epoch', t.started_at) * 1000000) AS BIGINT)
        ) AS DOUBLE PRECISION) / 1000000 AS task_time_s
    FROM tasks t
    WHERE t.workflow_id IS NOT NULL
    GROUP BY t.workflow_id
),
hosts AS (
    SELECT h.workflow_id, string_agg(h.hostname, ',' ORDER BY h.hostname COLLATE "C") AS hosts
    FROM (
        SELECT DISTINCT workflow_id, hostname
        FROM tasks
        WHERE workflow_id IS NOT NULL AND hostname IS NOT NULL
    ) h
    GROUP BY h.workflow_id
)
SELECT
    ids.workflow_id,
    w.name,
    COALESCE(w.campaign_id, tk.campaign_id) AS campaign_id,
    w.parent_workflow_id,
    w.status,
    w."user",
    w.started_at,
    w.ended_at,
    CAST(
        CAST(ROUND(date_part('epoch', w.ended_at) * 1000000) AS BIGINT)
        - CAST(ROUND(date_part('epoch', w.started_at) * 1000000) AS BIGINT)
        AS DOUBLE PRECISION
    ) / 1000000 AS duration_s,
    COALESCE(tk.task_count, 0) AS task_count,
    COALESCE(tk.finished_count, 0) AS finished_count,
    COALESCE(tk.error_count, 0) AS error_count,
    COALESCE(tk.running_count, 0) AS running_count,
    COALESCE(tk.other_count, 0) AS other_count,
    COALESCE(tk.activity_count, 0) AS activity_count,
    tk.first_task_started_at,
    tk.last_task_ended_at,
    tk.task_time_s,
    COALESCE(tk.host_count, 0) AS host_count,
    hosts.hosts
FROM ids
LEFT JOIN workflows w ON w.workflow_id = ids.workflow_id
LEFT JOIN tk ON tk.workflow_id = ids.workflow_id
LEFT JOIN hosts ON hosts.workflow_id = ids.workflow_id;
