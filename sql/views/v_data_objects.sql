-- v_data_objects: stored data objects (models, datasets, blobs), one row per version,
-- without the bytes; is_latest marks the current version of each object.
CREATE OR REPLACE VIEW v_data_objects AS
SELECT
    o.object_id,
    o.version,
    o.object_type,
    o.task_id,
    o.workflow_id,
    o.custom_metadata,
    o.created_at,
    o.created_by,
    o.updated_at,
    o.updated_by,
    o.prev_version,
    o.object_size_bytes,
    o.data_sha256,
    o.data_hash_algo,
    o.version = (SELECT max(o2.version) FROM data_objects o2 WHERE o2.object_id = o.object_id)
        AS is_latest
FROM data_objects o;
