-- v_activity_stats: per workflow and activity, how many tasks ran, how they ended and what
-- they cost in time (seconds; durations of tasks with both times known).
CREATE OR REPLACE VIEW v_activity_stats AS
WITH d AS (
    SELECT
        t.workflow_id,
        t.campaign_id,
        t.activity_id,
        t.status,
        t.started_at,
        t.ended_at,
        CAST(ROUND(date_part('epoch', t.ended_at) * 1000000) AS BIGINT)
        - CAST(ROUND(date_part('epoch', t.started_at) * 1000000) AS BIGINT) AS duration_us
    FROM tasks t
)
SELECT
    d.workflow_id,
    min(d.campaign_id COLLATE "C") AS campaign_id,
    d.activity_id,
    count(*) AS task_count,
    CAST(sum(CASE WHEN d.status = 'FINISHED' THEN 1 ELSE 0 END) AS BIGINT) AS finished_count,
    CAST(sum(CASE WHEN d.status = 'ERROR' THEN 1 ELSE 0 END) AS BIGINT) AS error_count,
    count(d.duration_us) AS timed_count,
    CAST(sum(d.duration_us) AS DOUBLE PRECISION) / 1000000 AS total_duration_s,
    CASE WHEN count(d.duration_us) > 0
        THEN CAST(sum(d.duration_us) AS DOUBLE PRECISION) / count(d.duration_us) / 1000000
    END AS avg_duration_s,
    CAST(min(d.duration_us) AS DOUBLE PRECISION) / 1000000 AS min_duration_s,
    CAST(max(d.duration_us) AS DOUBLE PRECISION) / 1000000 AS max_duration_s,
    min(d.started_at) AS first_started_at,
    max(d.ended_at) AS last_ended_at
FROM d
GROUP BY d.workflow_id, d.activity_id;
