-- v_agents: one row per agent (PROV-AGENT; with a record, or named by tasks or workflows): its
-- record's fields, the workflows and tasks it ran, its tool and model calls, and when.
CREATE OR REPLACE VIEW v_agents AS
WITH ids AS (
    SELECT agent_id FROM agents
    UNION
    SELECT agent_id FROM tasks WHERE agent_id IS NOT NULL
    UNION
    SELECT agent_id FROM workflows WHERE agent_id IS NOT NULL
),
tk AS (
    SELECT
        t.agent_id,
        count(*) AS task_count,
        CAST(sum(CASE WHEN t.subtype = 'agent_tool' THEN 1 ELSE 0 END) AS BIGINT)
            AS tool_call_count,
        CAST(sum(CASE WHEN t.subtype = 'ai_model_invocation' THEN 1 ELSE 0 END) AS BIGINT)
            AS model_call_count,
        CAST(sum(CASE WHEN t.status = 'ERROR' THEN 1 ELSE 0 END) AS BIGINT) AS error_count,
        min(t.started_at) AS first_task_started_at,
        max(t.ended_at) AS last_task_ended_at
    FROM tasks t
    WHERE t.agent_id IS NOT NULL
    GROUP BY t.agent_id
),
wf AS (
    SELECT w.agent_id, count(*) AS workflow_count
    FROM workflows w
    WHERE w.agent_id IS NOT NULL
    GROUP BY w.agent_id
)
SELECT
    ids.agent_id,
    a.name,
    a."user",
    a.workflow_id,
    a.campaign_id,
    a.registered_at,
    a.extra_metadata,
    COALESCE(wf.workflow_count, 0) AS workflow_count,
    COALESCE(tk.task_count, 0) AS task_count,
    COALESCE(tk.tool_call_count, 0) AS tool_call_count,
    COALESCE(tk.model_call_count, 0) AS model_call_count,
    COALESCE(tk.error_count, 0) AS error_count,
    tk.first_task_started_at,
    tk.last_task_ended_at
FROM ids
LEFT JOIN agents a ON a.agent_id = ids.agent_id
LEFT JOIN tk ON tk.agent_id = ids.agent_id
LEFT JOIN wf ON wf.agent_id = ids.agent_id;
