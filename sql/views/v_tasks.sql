-- v_tasks: one row per task, its flat columns and its duration in seconds (NULL unless both
-- started_at and ended_at are known). Times are UTC timestamps.
CREATE OR REPLACE VIEW v_tasks AS
SELECT
    t.task_id,
    t.workflow_id,
    t.workflow_name,
    t.campaign_id,
    t.activity_id,
    t.subtype,
    t.status,
    t.parent_task_id,
    t.group_id,
    t.agent_id,
    t.source_agent_id,
    t.submitted_at,
    t.started_at,
    t.ended_at,
    t.registered_at,
    CAST(
        CAST(ROUND(date_part('epoch', t.ended_at) * 1000000) AS BIGINT)
        - CAST(ROUND(date_part('epoch', t.started_at) * 1000000) AS BIGINT)
        AS DOUBLE PRECISION
    ) / 1000000 AS duration_s,
    t.hostname,
    t.node_name,
    t.login_name,
    t."user",
    t.adapter_id,
    t.environment_id,
    t.stdout,
    t.stderr
FROM tasks t;
