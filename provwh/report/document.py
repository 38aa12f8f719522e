"""The report's content as a small document model (sections of paragraphs, bullets, tables).

Built once from the numbers in ``summary`` and rendered twice: as Markdown (the card) and as
text pages of the PDF, so the two always say the same thing.

The layout is Flowcept 1.0.3's Workflow Card (``# Workflow Card: <name>``): 1. Workflow,
2. Summary, 3. Infrastructure (host OS first), 4. Workflow Overview (run summary, structure,
resource usage, observations), 5. Activities (timing report, inputs and outputs, per-activity
resource usage, tags per activity), 6. Significant Workflow Artifacts (object artifacts summary,
the latest objects per type, data and paths in tasks), then the aggregation method.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from provwh.core.text import plural
from provwh.report import fmt
from provwh.report import summary as sm
from provwh.report.objects import LATEST_PER_TYPE
from provwh.version import __version__

MAX_TABLE_ROWS = 200
NO_TELEMETRY = "Telemetry was not captured for this workflow's tasks."
NO_OBJECTS = "No object artifacts were recorded for this run."
CARD_TITLE, CAMPAIGN_TITLE = "Workflow Card", "Campaign Workflow Card"


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    align: str = ""  # one "l" or "r" per column; left when missing

    def alignment(self, col: int) -> str:
        return self.align[col] if col < len(self.align) else "l"


Block = str | list[str] | Table  # a paragraph, a bullet list or a table


@dataclass
class Section:
    title: str
    key: str  # workflow | summary | infrastructure | overview | activities | artifacts | ...
    blocks: list[Block] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)


@dataclass
class Document:
    title: str
    intro: list[Block]
    sections: list[Section]


def _capped(rows: list[list[str]], what: str, limit: int = MAX_TABLE_ROWS) -> tuple[list, str]:
    if len(rows) <= limit:
        return rows, ""
    return rows[:limit], f"Showing the first {limit} of {len(rows)} {what}."


def _status_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "—"


def _code_version(repo: Any) -> str:
    if not isinstance(repo, dict) or not repo:
        return "—"
    commit = repo.get("commit") or repo.get("sha") or repo.get("short_sha")
    text = f"`{str(commit)[:12]}`" if commit else "unknown commit"
    if repo.get("branch"):
        text += f" on {repo['branch']}"
    if repo.get("dirty"):
        text += " (uncommitted changes)"
    if repo.get("remote"):
        text += f", {repo['remote']}"
    return text


def _host(record: dict[str, Any], tasks: list[dict[str, Any]]) -> str:
    host = record.get("hostname") or record.get("node_name")
    if not host:
        host = next((t.get("hostname") for t in tasks if t.get("hostname")), None)
    if not host:
        return "—"
    system = record.get("sys_name")
    return f"{host} ({system})" if system else str(host)


def _arguments(used: Any) -> str | None:
    if not isinstance(used, dict) or not used:
        return None
    parts = [f"{k}={fmt.short(repr(v), 30)}" for k, v in sorted(used.items(), key=lambda i: i[0])]
    return fmt.short(", ".join(parts), 100)


def workflow_section(wf: sm.WorkflowRun) -> Section:
    rec = wf.record
    description = rec.get("workflow_description") or rec.get("description")
    if not description:
        activities = len({sm.activity(t) for t in wf.tasks})
        description = (
            f"Workflow run '{wf.label}' of {plural(activities, 'activity')} "
            f"({plural(len(wf.tasks), 'task')})."
        )
    items = [f"Name: {wf.name or '—'}", f"Description: {fmt.short(description, 300)}"]
    return Section("1. Workflow", "workflow", [items])


def summary_section(wf: sm.WorkflowRun) -> Section:
    rec = wf.record
    tasks = wf.tasks
    rows = [
        ["Workflow id", f"`{wf.workflow_id}`" if wf.workflow_id else "—"],
        ["Name", wf.name or "—"],
    ]
    if rec.get("subtype"):
        rows.append(["Subtype", str(rec["subtype"])])
    rows += [
        ["Campaign id", f"`{wf.campaign_id}`" if wf.campaign_id else "—"],
        ["Status", wf.status],
        ["Started (UTC)", fmt.iso_utc(wf.started_at)],
        ["Ended (UTC)", fmt.iso_utc(wf.ended_at)],
        ["Duration", fmt.seconds(wf.duration)],
        ["User", str(rec.get("user") or next((t["user"] for t in tasks if t.get("user")), "—"))],
        ["Host", _host(rec, tasks)],
        ["Code version", _code_version(rec.get("code_repository"))],
        ["provwh version", str(rec.get("flowcept_version") or "—")],
        ["Tasks", f"{len(tasks)} ({_status_text(sm.status_counts(tasks))})" if tasks else "0"],
    ]
    args = _arguments(rec.get("used"))
    if args:
        rows.append(["Arguments", args])
    blocks: list[Block] = [Table(["Field", "Value"], rows)]
    errors = [t for t in tasks if t["status"] == "ERROR"]
    if errors:
        items = []
        for task in errors[:10]:
            message = str(task.get("stderr") or "").strip().splitlines()
            message = fmt.short(message[-1], 80) if message else "no message"
            items.append(f"`{sm.activity(task)}` (task `{sm.task_key(task)}`): {message}")
        if len(errors) > 10:
            items.append(f"… and {len(errors) - 10} more")
        blocks += [f"Tasks that failed ({len(errors)}):", items]
    return Section("2. Summary", "summary", blocks)


def _machine_info(record: dict[str, Any]) -> dict[str, Any]:
    """The workflow's machine facts: flat, or (as Flowcept may keep them) the first host's."""
    info = record.get("machine_info")
    if not isinstance(info, dict) or not info:
        return {}
    if any(k in info for k in ("platform", "cpu", "memory")):
        return info
    return next((v for v in info.values() if isinstance(v, dict)), {})


def host_os(record: dict[str, Any]) -> str | None:
    """``Linux 6.1.0 (x86_64)``: the record's ``host_os``, its platform facts or ``sys_name``."""
    if record.get("host_os"):
        return str(record["host_os"])
    plat = _machine_info(record).get("platform")
    if isinstance(plat, dict):
        text = " ".join(str(plat[k]) for k in ("system", "release") if plat.get(k))
        if plat.get("machine"):
            text += f" ({plat['machine']})"
        if text.strip():
            return text.strip()
    return str(record["sys_name"]) if record.get("sys_name") else None


def infrastructure_section(wf: sm.WorkflowRun) -> Section:
    info = _machine_info(wf.record)
    items: list[str] = []
    os_text = host_os(wf.record)
    if os_text:
        items.append(f"Host OS: {os_text}")
    if info:
        plat = info.get("platform")
        if isinstance(plat, dict) and plat.get("python_version"):
            impl = plat.get("python_implementation")
            items.append(f"Python: {plat['python_version']}" + (f" ({impl})" if impl else ""))
        cpu = info.get("cpu")
        if isinstance(cpu, dict):
            parts = [str(cpu["model"])] if cpu.get("model") else []
            cores = [f"{cpu[k]} {k}" for k in ("physical", "logical") if cpu.get(k)]
            if cores:
                parts.append(" / ".join(cores) + " cores")
            if cpu.get("max_frequency"):
                parts.append(f"up to {fmt.number(cpu['max_frequency'])} MHz")
            items.append("CPU: " + (", ".join(parts) or "—"))
        mem = info.get("memory")
        if isinstance(mem, dict) and mem.get("total"):
            text = fmt.nbytes(mem["total"])
            if mem.get("swap_total") is not None:
                text += f" (swap {fmt.nbytes(mem['swap_total'])})"
            items.append(f"Memory: {text}")
        gpu = info.get("gpu")
        if isinstance(gpu, dict) and gpu:
            names = [str(n) for n in gpu.get("names") or [] if n]
            totals = [t for t in gpu.get("memory_totals") or [] if t]
            text = f"{gpu.get('count', len(names))} × " + (", ".join(sorted(set(names))) or "GPU")
            if totals:
                text += f" ({fmt.nbytes(max(totals))} each)"
            items.append(f"GPU: {text}")
        disk = info.get("disk")
        if isinstance(disk, dict) and disk.get("total"):
            text = f"{fmt.nbytes(disk['total'])}"
            if disk.get("percent") is not None:
                text += f", {fmt.number(disk['percent'])} % used"
            items.append(f"Disk: {text}")
        known = {"platform", "cpu", "memory", "gpu", "disk", "process", "environment"}
        rest = sorted(str(k) for k in info if k not in known)
        if rest:
            items.append("Other machine facts: " + ", ".join(rest))
    hosts = sorted({str(t["hostname"]) for t in wf.tasks if t.get("hostname")})
    if len(hosts) > 1:
        items.append(f"Task hosts ({len(hosts)}): " + fmt.short(", ".join(hosts), 120))
    if not items:
        return Section(
            "3. Infrastructure", "infrastructure", ["Machine information was not captured."]
        )
    return Section("3. Infrastructure", "infrastructure", [items])


def timing_section(tasks: list[dict[str, Any]]) -> Section:
    stats = sm.activity_stats(tasks)
    if not stats:
        return Section("Timing Report", "timing", ["No tasks."])
    rows = [
        [
            f"`{s.name}`",
            str(s.count),
            _status_text(s.statuses),
            fmt.seconds(s.median),
            fmt.seconds(s.min),
            fmt.seconds(s.max),
            fmt.seconds(s.total),
            fmt.iso_utc(s.first_start),
            fmt.iso_utc(s.last_end),
        ]
        for s in stats
    ]
    rows, note = _capped(rows, "activities")
    headers = [
        "Activity",
        "Tasks",
        "Status",
        "Median",
        "Min",
        "Max",
        "Total",
        "First started (UTC)",
        "Last ended (UTC)",
    ]
    blocks: list[Block] = [
        "Rows are in the order of each activity's first start.",
        Table(headers, rows, "lrlrrrrll"),
    ]
    untimed = sum(1 for t in tasks if sm.duration(t) is None)
    if untimed:
        blocks.append(f"Tasks without a start or end time: {untimed} of {len(tasks)}.")
    if note:
        blocks.append(note)
    return Section("Timing Report", "timing", blocks)


def io_section(tasks: list[dict[str, Any]]) -> Section:
    keys = sm.io_summary(tasks)
    if not keys:
        return Section("Inputs and Outputs", "io", ["No used or generated values were recorded."])
    rows = [
        [
            f"`{k.activity}`",
            k.direction,
            k.key if k.key.startswith("…") else f"`{k.key}`",
            "/".join(k.types),
            f"{k.seen}/{k.of}" if k.types else "",
            k.example,
        ]
        for k in keys
    ]
    rows, note = _capped(rows, "keys")
    headers = ["Activity", "Field", "Key", "Type", "Tasks", "Example or range"]
    return Section(
        "Inputs and Outputs", "io", [Table(headers, rows, "llllrl")] + ([note] * bool(note))
    )


def resources_section(res: sm.Resources) -> Section:
    """Workflow-level resource usage (4.3)."""
    if not res.captured:
        return Section("4.3 Resource Usage", "resources", [NO_TELEMETRY])
    blocks: list[Block] = [f"Telemetry was captured for {res.captured} of {res.total} tasks."]
    items = []
    span = res.span("cpu")
    if span:
        items.append(
            f"System CPU: {fmt.percent(span[0])} – {fmt.percent(span[2])} % "
            f"(mean {fmt.percent(span[1])} %)"
        )
    span = res.span("mem_used")
    if span:
        items.append(f"System memory used: {fmt.nbytes(span[0])} – {fmt.nbytes(span[2])}")
    span = res.span("rss")
    if span:
        items.append(f"Process RSS: {fmt.nbytes(span[0])} – {fmt.nbytes(span[2])}")
    span = res.span("gpu_util")
    if span:
        items.append(
            f"GPU utilization: {fmt.percent(span[0])} – {fmt.percent(span[2])} % "
            f"(mean {fmt.percent(span[1])} %)"
        )
    if items:
        blocks.append(items)
    return Section("4.3 Resource Usage", "resources", blocks)


def activity_resources_section(res: sm.Resources) -> Section | None:
    """Per-activity resource usage (in 5. Activities), when telemetry was captured."""
    if not res.captured:
        return None
    gpu = any(a.gpu_util is not None for a in res.activities)
    headers = ["Activity", "Tasks", "CPU %", "Process CPU %", "Memory used Δ", "RSS Δ", "Peak RSS"]
    rows = []
    for a in res.activities:
        row = [
            f"`{a.name}`",
            str(a.tasks),
            fmt.percent(a.cpu),
            fmt.percent(a.proc_cpu),
            fmt.nbytes(a.mem_delta, signed=True),
            fmt.nbytes(a.rss_delta, signed=True),
            fmt.nbytes(a.rss_peak),
        ]
        if gpu:
            row.append(fmt.percent(a.gpu_util))
        rows.append(row)
    if gpu:
        headers.append("GPU %")
    rows, note = _capped(rows, "activities")
    blocks: list[Block] = [Table(headers, rows, "lrrrrrrr")]
    blocks.append(
        "CPU % are means of the readings at task end; Δ are mean changes from task start to end."
    )
    if note:
        blocks.append(note)
    return Section("Per-activity Resource Usage", "activity_resources", blocks)


def tags_section(tasks: list[dict[str, Any]]) -> Section:
    rows = [
        [
            f"`{a.name}`",
            str(a.tasks),
            ", ".join(f"`{s}`" for s in a.subtypes) or "—",
            ", ".join(f"`{t}`" + (f" ({n})" if n > 1 else "") for t, n in a.tags.items()) or "—",
        ]
        for a in sm.activity_tags(tasks)
        if a.subtypes or a.tags
    ]
    if not rows:
        return Section("Tags per Activity", "tags", ["No task carries tags or a subtype."])
    rows, note = _capped(rows, "activities")
    table = Table(["Activity", "Tasks", "Subtype", "Tags (tasks)"], rows, "lrll")
    return Section("Tags per Activity", "tags", [table] + ([note] * bool(note)))


def observations_section(wf: sm.WorkflowRun, res: sm.Resources) -> Section:
    tasks = wf.tasks
    stats = [s for s in sm.activity_stats(tasks) if s.durations]
    items = []
    if stats:
        slowest = max(stats, key=lambda s: (s.median, -stats.index(s)))
        items.append(
            f"Slowest activity (median): `{slowest.name}` at {fmt.seconds(slowest.median)}"
        )
        longest = max(stats, key=lambda s: (s.total, -stats.index(s)))
        items.append(
            f"Most time in total: `{longest.name}`, {fmt.seconds(longest.total)} over "
            f"{plural(len(longest.durations), 'task')}"
        )
    failed = Counter(sm.activity(t) for t in tasks if t["status"] == "ERROR")
    if failed:
        per = ", ".join(
            f"`{a}`: {n}" for a, n in sorted(failed.items(), key=lambda i: (-i[1], i[0]))
        )
        items.append(f"Failed tasks: {sum(failed.values())} ({per})")
    busy = [a for a in res.activities if a.cpu is not None]
    if busy:
        top = max(busy, key=lambda a: a.cpu)
        items.append(f"Most CPU-active activity: `{top.name}` at {fmt.percent(top.cpu)} % CPU")
    grew = [a for a in res.activities if a.rss_delta is not None and a.rss_delta > 0]
    if grew:
        top = max(grew, key=lambda a: a.rss_delta)
        items.append(
            f"Largest memory growth: `{top.name}`, RSS {fmt.nbytes(top.rss_delta, signed=True)}"
        )
    if wf.objects:
        objs = sm.summarize(wf.objects)
        kinds = ", ".join(f"{plural(n, 'object')} of type `{k}`" for k, n in objs.by_type.items())
        items.append(f"Objects stored: {kinds}")
    if not items:
        return Section(
            "4.4 Observations", "observations", ["No task has both a start and an end time."]
        )
    return Section("4.4 Observations", "observations", [items])


def run_summary_section(wf: sm.WorkflowRun) -> Section:
    tasks = wf.tasks
    items = [
        f"Activities: {len({sm.activity(t) for t in tasks})}",
        f"Tasks: {len(tasks)} ({_status_text(sm.status_counts(tasks))})" if tasks else "Tasks: 0",
    ]
    if wf.objects:
        objs = sm.summarize(wf.objects)
        kinds = ", ".join(f"{n} {k}" for k, n in objs.by_type.items())
        items.append(f"Objects: {len(objs.objects)} ({kinds})")
    items.append(f"Total elapsed workflow time: {fmt.seconds(wf.duration)}")
    args = _arguments(wf.record.get("used"))
    if args:
        items.append(f"Arguments: {args}")
    generated = _arguments(wf.record.get("generated"))
    if generated:
        items.append(f"Outputs: {generated}")
    return Section("4.1 Run Summary", "run", [items])


def overview_section(wf: sm.WorkflowRun, res: sm.Resources) -> Section:
    return Section(
        "4. Workflow Overview",
        "overview",
        [],
        [
            run_summary_section(wf),
            lineage_section(wf.tasks),
            resources_section(res),
            observations_section(wf, res),
        ],
    )


def activities_section(wf: sm.WorkflowRun, res: sm.Resources) -> Section:
    subs = [timing_section(wf.tasks), io_section(wf.tasks)]
    per_activity = activity_resources_section(res)
    if per_activity is not None:
        subs.append(per_activity)
    subs.append(tags_section(wf.tasks))
    return Section("5. Activities", "activities", [], subs)


def lineage_section(tasks: list[dict[str, Any]]) -> Section:
    lin = sm.lineage(tasks)
    if not tasks:
        return Section("4.2 Workflow Structure", "lineage", ["No tasks."])
    items = [
        f"Tasks with a parent task: {lin.with_parent} of {len(tasks)}",
        f"Tasks with explicit dependencies: {lin.with_dependencies} "
        f"({plural(len(lin.dependency_edges), 'edge')})",
        f"Roots: {len(lin.roots)}; leaves: {len(lin.leaves)}",
        f"Depth of the parent tree: {lin.parent_depth} "
        + ("level" if lin.parent_depth == 1 else "levels"),
        f"Longest chain (parents and dependencies): {plural(lin.longest_chain, 'task')}",
    ]
    by_key = {sm.task_key(t): t for t in tasks}
    position = {k: i for i, k in enumerate(lin.nodes)}
    top = sorted(lin.children.items(), key=lambda kv: (-kv[1], position[kv[0]]))[:5]
    if top:
        items.append(
            "Most children: "
            + "; ".join(f"`{sm.activity(by_key[k])}` (task `{k}`): {n}" for k, n in top)
        )
    if lin.dangling:
        items.append(f"References to tasks not in the input: {lin.dangling}")
    blocks: list[Block] = [items]
    if lin.loops:
        rows = []
        for loop in lin.loops:
            its = loop.iterations
            per_run = str(its[0]) if min(its) == max(its) else f"{min(its)} – {max(its)}"
            durations = loop.iteration_durations
            median = fmt.seconds(statistics.median(durations)) if durations else "—"
            runs = loop.run_durations
            run_median = fmt.seconds(statistics.median(runs)) if runs else "—"
            rows.append(
                [f"`{loop.name}`", str(loop.runs), str(sum(its)), per_run, median, run_median]
            )
        rows, note = _capped(rows, "loops")
        headers = ["Loop", "Runs", "Iterations", "Per run", "Median iteration", "Median run"]
        blocks += ["Loops:", Table(headers, rows, "lrrrrr")] + ([note] * bool(note))
    return Section("4.2 Workflow Structure", "lineage", blocks)


def task_artifacts_section(tasks: list[dict[str, Any]]) -> Section:
    art = sm.artifacts(tasks)
    blocks: list[Block] = []
    if art.data:
        rows = [[f"`{a}`", f"`{k}`", fmt.nbytes(n)] for a, k, n in art.data]
        rows, note = _capped(rows, "tasks with data", 50)
        blocks += [
            f"Tasks carrying data: {len(art.data)}",
            Table(["Activity", "Task", "Size"], rows, "llr"),
        ] + ([note] * bool(note))
    if art.paths:
        rows = []
        for p in art.paths:
            shown = ", ".join(f"`{fmt.short(v, 60)}`" for v in p.values[:3])
            if len(p.values) > 3:
                shown += f", … ({len(p.values)} distinct)"
            rows.append([f"`{p.activity}`", p.direction, f"`{p.key}`", str(p.tasks), shown])
        rows, note = _capped(rows, "keys", 50)
        blocks += [
            "File paths and URLs in task values:",
            Table(["Activity", "Field", "Key", "Tasks", "Values"], rows, "lllrl"),
        ] + ([note] * bool(note))
    if not blocks:
        blocks = ["No artifacts: no task carries data and no value looks like a file path or URL."]
    return Section("Data and Paths in Tasks", "task_artifacts", blocks)


def _metadata(value: Any) -> str:
    if not isinstance(value, dict) or not value:
        return "—"
    parts = [
        f"{k}={fmt.short(repr(v), 30)}" for k, v in sorted(value.items(), key=lambda i: str(i[0]))
    ]
    return fmt.short(", ".join(parts), 80)


def objects_sections(objects: list[dict[str, Any]]) -> list[Section]:
    """Object Artifacts Summary, and Object Details by Type (the latest objects of each type)."""
    if not objects:
        return [Section("Object Artifacts Summary", "objects", [NO_OBJECTS])]
    summary = sm.summarize(objects)
    sizes = summary.sizes
    rows = [
        ["Objects", str(len(summary.objects))],
        ["Object records (versions)", str(summary.records)],
        ["By type", ", ".join(f"{k}: {n}" for k, n in summary.by_type.items())],
        ["By storage", ", ".join(f"{k}: {n}" for k, n in summary.by_storage.items())],
        ["Task-linked objects", str(summary.task_linked)],
        ["Workflow-linked objects", str(summary.workflow_linked)],
        ["Max version", "—" if summary.max_version is None else str(summary.max_version)],
        ["Total size", fmt.nbytes(sum(sizes)) if sizes else "—"],
        ["Average size", fmt.nbytes(sum(sizes) / len(sizes)) if sizes else "—"],
        ["Max size", fmt.nbytes(max(sizes)) if sizes else "—"],
    ]
    first = Section(
        "Object Artifacts Summary",
        "objects",
        [
            "Counts and sizes are of each object's latest version in the input.",
            Table(["Metric", "Value"], rows, "ll"),
        ],
    )
    blocks: list[Block] = []
    headers = ["Object", "Version", "Versions", "Size", "Task", "Stored (UTC)", "Tags", "Metadata"]
    for kind, objs in summary.latest.items():
        shown = objs[:LATEST_PER_TYPE]
        rows = [
            [
                f"`{o.object_id}`",
                "—" if o.version is None else str(o.version),
                str(o.versions),
                fmt.nbytes(o.size),
                f"`{o.latest['task_id']}`" if o.latest.get("task_id") is not None else "—",
                fmt.iso_utc(o.stored_at),
                ", ".join(f"`{t}`" for t in o.tags) or "—",
                _metadata(o.latest.get("custom_metadata")),
            ]
            for o in shown
        ]
        blocks += [f"{sm.type_label(kind)} ({len(objs)}):", Table(headers, rows, "lrrrllll")]
        if len(objs) > len(shown):
            blocks.append(f"Showing the {len(shown)} latest of {len(objs)}.")
    details = Section("Object Details by Type", "object_details", blocks)
    return [first, details]


def artifacts_section(wf: sm.WorkflowRun) -> Section:
    subs = objects_sections(wf.objects) + [task_artifacts_section(wf.tasks)]
    return Section("6. Significant Workflow Artifacts", "artifacts", [], subs)


def aggregation_section(data: sm.Dataset) -> Section | None:
    """How rows that stand for several tasks were computed (when any row does)."""
    grouped = any(s.count > 1 for wf in data.workflows for s in sm.activity_stats(wf.tasks))
    if not grouped:
        return None
    items = [
        "Grouping key: `activity_id`; each activity row aggregates its tasks (`Tasks`).",
        "Timing: median, min, max and total of task durations (`ended_at` − `started_at`); "
        "tasks without both times are counted, not timed.",
        "Resource usage: CPU % are means of the readings at task end; Δ are mean changes from "
        "task start to end; peak RSS is the highest reading.",
        "Inputs and outputs: per key, the tasks that carry it and the range or an example of "
        "its values.",
        "Objects: one row per object, its latest version; `Versions` counts the version records "
        "in the input.",
    ]
    return Section("Aggregation Method", "aggregation", [items])


def workflow_sections(wf: sm.WorkflowRun) -> list[Section]:
    res = sm.of_workflow(wf)
    return [
        workflow_section(wf),
        summary_section(wf),
        infrastructure_section(wf),
        overview_section(wf, res),
        activities_section(wf, res),
        artifacts_section(wf),
    ]


def campaign_section(data: sm.Dataset) -> Section:
    tasks = data.tasks
    starts = [wf.started_at for wf in data.workflows if wf.started_at is not None]
    ends = [wf.ended_at for wf in data.workflows if wf.ended_at is not None]
    ids = data.campaign_ids
    items = [
        "Campaign id: " + (", ".join(f"`{c}`" for c in ids) if ids else "—"),
        f"Workflows: {len(data.workflows)} "
        f"({_status_text(sm.status_counts([{'status': wf.status} for wf in data.workflows]))})",
        f"Tasks: {len(tasks)} ({_status_text(sm.status_counts(tasks))})",
    ]
    if starts and ends:
        items.append(
            f"From {fmt.iso_utc(min(starts))} to {fmt.iso_utc(max(ends))} "
            f"({fmt.seconds(max(ends) - min(starts))})"
        )
    rows = [
        [
            f"`{wf.workflow_id}`" if wf.workflow_id else "—",
            wf.name or "—",
            wf.status,
            fmt.iso_utc(wf.started_at),
            fmt.seconds(wf.duration),
            str(len(wf.tasks)),
            str(sum(1 for t in wf.tasks if t["status"] == "ERROR")),
        ]
        for wf in data.workflows
    ]
    rows, note = _capped(rows, "workflows")
    headers = ["Workflow", "Name", "Status", "Started (UTC)", "Duration", "Tasks", "Errors"]
    table = Table(headers, rows, "lllllrr")
    return Section("Campaign Summary", "campaign", [items, table] + ([note] * bool(note)))


def build(data: sm.Dataset) -> Document:
    """The Workflow Card's content for one workflow, or a campaign card for several."""
    tasks = data.tasks
    wfs = data.workflows
    counted = f"{plural(len(wfs), 'workflow')}, {plural(len(tasks), 'task')}"
    if data.objects:
        counted += f", {plural(len(data.objects), 'object record')}"
    intro: list[Block] = [
        f"Built by provwh {__version__} from {plural(data.record_count, 'record')}: {counted}."
    ]
    if data.other_records:
        other = ", ".join(f"{k}: {n}" for k, n in data.other_records.items())
        intro.append(
            f"Records that are neither workflows, tasks nor objects were left out ({other})."
        )
    if data.unplaced_objects:
        intro.append(
            f"Object records of no workflow in the input were left out: {data.unplaced_objects}."
        )
    if not wfs:
        intro.append("No workflow or task records in the input.")
        return Document(CARD_TITLE, intro, [])
    aggregation = aggregation_section(data)
    tail = [aggregation] if aggregation is not None else []
    if len(wfs) == 1:
        return Document(f"{CARD_TITLE}: {wfs[0].label}", intro, workflow_sections(wfs[0]) + tail)
    sections = [campaign_section(data)]
    for wf in wfs:
        title = f"Workflow {wf.name}" if wf.name else "Workflow"
        if wf.workflow_id:
            title += f" (`{wf.workflow_id}`)"
        sections.append(Section(title, "workflow_run", [], workflow_sections(wf)))
    return Document(CAMPAIGN_TITLE, intro, sections + tail)
