-- v_task_edges: every lineage edge src -> dst with its kind: 'explicit' (declared
-- dependencies / dependents), 'parent' (parent task -> nested task) or 'dataflow' (a value
-- src generated was used by dst; derived at load time, see sql/data_edges.sql).
CREATE OR REPLACE VIEW v_task_edges AS
SELECT
    e.src_task_id,
    e.dst_task_id,
    CASE e.kind
        WHEN 'dependency' THEN 'explicit'
        WHEN 'data' THEN 'dataflow'
        ELSE e.kind
    END AS kind,
    s.activity_id AS src_activity_id,
    d.activity_id AS dst_activity_id,
    s.workflow_id AS src_workflow_id,
    d.workflow_id AS dst_workflow_id
FROM task_edges e
LEFT JOIN tasks s ON s.task_id = e.src_task_id
LEFT JOIN tasks d ON d.task_id = e.dst_task_id;
