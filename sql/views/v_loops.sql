-- v_loops: one row per loop run, from its iterations alone (FlowceptLoop and
-- FlowceptLightweightLoop give each iteration the loop's id as group_id): the loop's name,
-- iterations, first start, last end and duration in seconds.
CREATE OR REPLACE VIEW v_loops AS
SELECT
    t.group_id,
    min(t.workflow_id COLLATE "C") AS workflow_id,
    min(t.campaign_id COLLATE "C") AS campaign_id,
    min(left(t.activity_id, length(t.activity_id) - 10) COLLATE "C") AS loop_name,
    min(t.parent_task_id COLLATE "C") AS parent_task_id,
    count(*) AS iteration_count,
    CAST(sum(CASE WHEN t.status = 'ERROR' THEN 1 ELSE 0 END) AS BIGINT) AS error_count,
    min(t.started_at) AS started_at,
    max(t.ended_at) AS ended_at,
    CAST(
        CAST(ROUND(date_part('epoch', max(t.ended_at)) * 1000000) AS BIGINT)
        - CAST(ROUND(date_part('epoch', min(t.started_at)) * 1000000) AS BIGINT)
        AS DOUBLE PRECISION
    ) / 1000000 AS duration_s
FROM tasks t
WHERE t.group_id IS NOT NULL
    AND right(t.activity_id, 10) = '_iteration'
GROUP BY t.group_id;
