-- v_task_telemetry: one row per task and telemetry metric, with its value at the task's
-- start, at its end and the difference (end - start). Metrics are the typed columns of
-- task_telemetry (CPU, memory, swap, disk, network, process, GPU), all as doubles; a metric
-- missing at both ends has no row. The full snapshots stay in tasks.telemetry_at_start/_end.
CREATE OR REPLACE VIEW v_task_telemetry AS
WITH k AS (
    SELECT DISTINCT task_id FROM task_telemetry
),
x AS (
    SELECT
        k.task_id,
        t.workflow_id,
        t.activity_id,
        t.started_at,
        m.metric,
        CASE m.metric
            WHEN 'cpu_percent' THEN CAST(s.cpu_percent AS DOUBLE PRECISION)
            WHEN 'cpu_user' THEN CAST(s.cpu_user AS DOUBLE PRECISION)
            WHEN 'cpu_system' THEN CAST(s.cpu_system AS DOUBLE PRECISION)
            WHEN 'cpu_idle' THEN CAST(s.cpu_idle AS DOUBLE PRECISION)
            WHEN 'cpu_iowait' THEN CAST(s.cpu_iowait AS DOUBLE PRECISION)
            WHEN 'mem_total' THEN CAST(s.mem_total AS DOUBLE PRECISION)
            WHEN 'mem_used' THEN CAST(s.mem_used AS DOUBLE PRECISION)
            WHEN 'mem_available' THEN CAST(s.mem_available AS DOUBLE PRECISION)
            WHEN 'mem_percent' THEN CAST(s.mem_percent AS DOUBLE PRECISION)
            WHEN 'swap_used' THEN CAST(s.swap_used AS DOUBLE PRECISION)
            WHEN 'swap_percent' THEN CAST(s.swap_percent AS DOUBLE PRECISION)
            WHEN 'disk_read_bytes' THEN CAST(s.disk_read_bytes AS DOUBLE PRECISION)
            WHEN 'disk_write_bytes' THEN CAST(s.disk_write_bytes AS DOUBLE PRECISION)
            WHEN 'disk_read_count' THEN CAST(s.disk_read_count AS DOUBLE PRECISION)
            WHEN 'disk_write_count' THEN CAST(s.disk_write_count AS DOUBLE PRECISION)
            WHEN 'disk_usage_percent' THEN CAST(s.disk_usage_percent AS DOUBLE PRECISION)
            WHEN 'net_bytes_sent' THEN CAST(s.net_bytes_sent AS DOUBLE PRECISION)
            WHEN 'net_bytes_recv' THEN CAST(s.net_bytes_recv AS DOUBLE PRECISION)
            WHEN 'net_packets_sent' THEN CAST(s.net_packets_sent AS DOUBLE PRECISION)
            WHEN 'net_packets_recv' THEN CAST(s.net_packets_recv AS DOUBLE PRECISION)
            WHEN 'proc_cpu_percent' THEN CAST(s.proc_cpu_percent AS DOUBLE PRECISION)
            WHEN 'proc_memory_percent' THEN CAST(s.proc_memory_percent AS DOUBLE PRECISION)
            WHEN 'proc_rss' THEN CAST(s.proc_rss AS DOUBLE PRECISION)
            WHEN 'proc_vms' THEN CAST(s.proc_vms AS DOUBLE PRECISION)
            WHEN 'proc_num_threads' THEN CAST(s.proc_num_threads AS DOUBLE PRECISION)
            WHEN 'proc_open_fds' THEN CAST(s.proc_open_fds AS DOUBLE PRECISION)
            WHEN 'gpu_count' THEN CAST(s.gpu_count AS DOUBLE PRECISION)
            WHEN 'gpu_memory_used' THEN CAST(s.gpu_memory_used AS DOUBLE PRECISION)
            WHEN 'gpu_memory_total' THEN CAST(s.gpu_memory_total AS DOUBLE PRECISION)
            WHEN 'gpu_utilization' THEN CAST(s.gpu_utilization AS DOUBLE PRECISION)
            WHEN 'gpu_temperature' THEN CAST(s.gpu_temperature AS DOUBLE PRECISION)
            WHEN 'gpu_power_usage' THEN CAST(s.gpu_power_usage AS DOUBLE PRECISION)
        END AS start_value,
        CASE m.metric
            WHEN 'cpu_percent' THEN CAST(e.cpu_percent AS DOUBLE PRECISION)
            WHEN 'cpu_user' THEN CAST(e.cpu_user AS DOUBLE PRECISION)
            WHEN 'cpu_system' THEN CAST(e.cpu_system AS DOUBLE PRECISION)
            WHEN 'cpu_idle' THEN CAST(e.cpu_idle AS DOUBLE PRECISION)
            WHEN 'cpu_iowait' THEN CAST(e.cpu_iowait AS DOUBLE PRECISION)
            WHEN 'mem_total' THEN CAST(e.mem_total AS DOUBLE PRECISION)
            WHEN 'mem_used' THEN CAST(e.mem_used AS DOUBLE PRECISION)
            WHEN 'mem_available' THEN CAST(e.mem_available AS DOUBLE PRECISION)
            WHEN 'mem_percent' THEN CAST(e.mem_percent AS DOUBLE PRECISION)
            WHEN 'swap_used' THEN CAST(e.swap_used AS DOUBLE PRECISION)
            WHEN 'swap_percent' THEN CAST(e.swap_percent AS DOUBLE PRECISION)
            WHEN 'disk_read_bytes' THEN CAST(e.disk_read_bytes AS DOUBLE PRECISION)
            WHEN 'disk_write_bytes' THEN CAST(e.disk_write_bytes AS DOUBLE PRECISION)
            WHEN 'disk_read_count' THEN CAST(e.disk_read_count AS DOUBLE PRECISION)
            WHEN 'disk_write_count' THEN CAST(e.disk_write_count AS DOUBLE PRECISION)
            WHEN 'disk_usage_percent' THEN CAST(e.disk_usage_percent AS DOUBLE PRECISION)
            WHEN 'net_bytes_sent' THEN CAST(e.net_bytes_sent AS DOUBLE PRECISION)
            WHEN 'net_bytes_recv' THEN CAST(e.net_bytes_recv AS DOUBLE PRECISION)
            WHEN 'net_packets_sent' THEN CAST(e.net_packets_sent AS DOUBLE PRECISION)
            WHEN 'net_packets_recv' THEN CAST(e.net_packets_recv AS DOUBLE PRECISION)
            WHEN 'proc_cpu_percent' THEN CAST(e.proc_cpu_percent AS DOUBLE PRECISION)
            WHEN 'proc_memory_percent' THEN CAST(e.proc_memory_percent AS DOUBLE PRECISION)
            WHEN 'proc_rss' THEN CAST(e.proc_rss AS DOUBLE PRECISION)
            WHEN 'proc_vms' THEN CAST(e.proc_vms AS DOUBLE PRECISION)
            WHEN 'proc_num_threads' THEN CAST(e.proc_num_threads AS DOUBLE PRECISION)
            WHEN 'proc_open_fds' THEN CAST(e.proc_open_fds AS DOUBLE PRECISION)
            WHEN 'gpu_count' THEN CAST(e.gpu_count AS DOUBLE PRECISION)
            WHEN 'gpu_memory_used' THEN CAST(e.gpu_memory_used AS DOUBLE PRECISION)
            WHEN 'gpu_memory_total' THEN CAST(e.gpu_memory_total AS DOUBLE PRECISION)
            WHEN 'gpu_utilization' THEN CAST(e.gpu_utilization AS DOUBLE PRECISION)
            WHEN 'gpu_temperature' THEN CAST(e.gpu_temperature AS DOUBLE PRECISION)
            WHEN 'gpu_power_usage' THEN CAST(e.gpu_power_usage AS DOUBLE PRECISION)
        END AS end_value
    FROM k
    LEFT JOIN task_telemetry s ON s.task_id = k.task_id AND s.phase = 'start'
    LEFT JOIN task_telemetry e ON e.task_id = k.task_id AND e.phase = 'end'
    LEFT JOIN tasks t ON t.task_id = k.task_id
    CROSS JOIN (
        VALUES
        ('cpu_percent'),
        ('cpu_user'),
        ('cpu_system'),
        ('cpu_idle'),
        ('cpu_iowait'),
        ('mem_total'),
        ('mem_used'),
        ('mem_available'),
        ('mem_percent'),
        ('swap_used'),
        ('swap_percent'),
        ('disk_read_bytes'),
        ('disk_write_bytes'),
        ('disk_read_count'),
        ('disk_write_count'),
        ('disk_usage_percent'),
        ('net_bytes_sent'),
        ('net_bytes_recv'),
        ('net_packets_sent'),
        ('net_packets_recv'),
        ('proc_cpu_percent'),
        ('proc_memory_percent'),
        ('proc_rss'),
        ('proc_vms'),
        ('proc_num_threads'),
        ('proc_open_fds'),
        ('gpu_count'),
        ('gpu_memory_used'),
        ('gpu_memory_total'),
        ('gpu_utilization'),
        ('gpu_temperature'),
        ('gpu_power_usage')
    ) AS m (metric)
)
SELECT
    x.task_id,
    x.workflow_id,
    x.activity_id,
    x.started_at,
    x.metric,
    x.start_value,
    x.end_value,
    x.end_value - x.start_value AS delta
FROM x
WHERE x.start_value IS NOT NULL OR x.end_value IS NOT NULL;
