-- v_data_lineage: producer task -> value -> consumer task, one row per value that links them
-- (the generated key, the used key and the value, typed as in v_task_io).
CREATE OR REPLACE VIEW v_data_lineage AS
SELECT
    e.src_task_id AS producer_task_id,
    p.activity_id AS producer_activity_id,
    p.workflow_id AS producer_workflow_id,
    g.key_path AS generated_key,
    u.key_path AS used_key,
    g.value_type,
    g.value_text,
    g.value_num,
    g.value_bool,
    g.value_json,
    e.dst_task_id AS consumer_task_id,
    c.activity_id AS consumer_activity_id,
    c.workflow_id AS consumer_workflow_id
FROM task_edges e
JOIN task_values g
    ON g.task_id = e.src_task_id AND g.direction = 'generated' AND g.match_hash IS NOT NULL
JOIN task_values u
    ON u.task_id = e.dst_task_id AND u.direction = 'used' AND u.match_hash = g.match_hash
LEFT JOIN tasks p ON p.task_id = e.src_task_id
LEFT JOIN tasks c ON c.task_id = e.dst_task_id
WHERE e.kind = 'data';
