-- v_task_io: one row per value a task used or generated (nested dicts walked, key_path
-- dotted), typed: value_text (strings), value_num (numbers), value_bool, value_json (lists,
-- dicts, bytes markers). value_type says which one holds the value.
CREATE OR REPLACE VIEW v_task_io AS
SELECT
    v.task_id,
    t.workflow_id,
    t.campaign_id,
    t.activity_id,
    v.direction,
    v.ordinal,
    v.key_path,
    v.leaf_key,
    v.value_type,
    v.value_text,
    v.value_num,
    v.value_bool,
    v.value_json,
    v.task_started_at
FROM task_values v
LEFT JOIN tasks t ON t.task_id = v.task_id;
