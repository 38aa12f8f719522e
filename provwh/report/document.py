"""The report's content as a small document model (sections of paragraphs, bullets, tables).

Built once from the numbers in ``summary`` and rendered twice: as Markdown (the card) and as
text pages of the PDF, so the two always say the same thing.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from provwh.core.text import plural
from provwh.report import fmt
from provwh.report import summary as sm
from provwh.version import __version__

MAX_TABLE_ROWS = 200
NO_TELEMETRY = "Telemetry was not captured for this workflow's tasks."


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
    key: str  # summary | infrastructure | timing | io | resources | lineage | artifacts | ...
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


def summary_section(wf: sm.WorkflowRun) -> Section:
    rec = wf.record
    tasks = wf.tasks
    rows = [
        ["Workflow id", f"`{wf.workflow_id}`" if wf.workflow_id else "—"],
        ["Name", wf.name or "—"],
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
    return Section("Summary", "summary", blocks)


def infrastructure_section(wf: sm.WorkflowRun) -> Section:
    info = wf.record.get("machine_info")
    items: list[str] = []
    if isinstance(info, dict) and info:
        plat = info.get("platform")
        if isinstance(plat, dict):
            text = " ".join(str(plat[k]) for k in ("system", "release") if plat.get(k))
            if plat.get("machine"):
                text += f" ({plat['machine']})"
            if plat.get("python_version"):
                impl = plat.get("python_implementation")
                text += f", Python {plat['python_version']}" + (f" ({impl})" if impl else "")
            items.append(f"Platform: {text.strip()}")
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
            "Infrastructure", "infrastructure", ["Machine information was not captured."]
        )
    return Section("Infrastructure", "infrastructure", [items])


def timing_section(tasks: list[dict[str, Any]]) -> Section:
    stats = sm.activity_stats(tasks)
    if not stats:
        return Section("Timing per activity", "timing", ["No tasks."])
    rows = [
        [
            f"`{s.name}`",
            str(s.count),
            _status_text(s.statuses),
            fmt.seconds(s.median),
            fmt.seconds(s.min),
            fmt.seconds(s.max),
            fmt.seconds(s.total),
        ]
        for s in stats
    ]
    rows, note = _capped(rows, "activities")
    headers = ["Activity", "Tasks", "Status", "Median", "Min", "Max", "Total"]
    blocks: list[Block] = [Table(headers, rows, "lrlrrrr")]
    untimed = sum(1 for t in tasks if sm.duration(t) is None)
    if untimed:
        blocks.append(f"Tasks without a start or end time: {untimed} of {len(tasks)}.")
    if note:
        blocks.append(note)
    return Section("Timing per activity", "timing", blocks)


def io_section(tasks: list[dict[str, Any]]) -> Section:
    keys = sm.io_summary(tasks)
    if not keys:
        return Section("Inputs and outputs", "io", ["No used or generated values were recorded."])
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
        "Inputs and outputs", "io", [Table(headers, rows, "llllrl")] + ([note] * bool(note))
    )


def resources_section(res: sm.Resources) -> Section:
    if not res.captured:
        return Section("Resource usage", "resources", [NO_TELEMETRY])
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
    blocks.append(Table(headers, rows, "lrrrrrrr"))
    blocks.append(
        "CPU % are means of the readings at task end; Δ are mean changes from task start to end."
    )
    if note:
        blocks.append(note)
    return Section("Resource usage", "resources", blocks)


def lineage_section(tasks: list[dict[str, Any]]) -> Section:
    lin = sm.lineage(tasks)
    if not tasks:
        return Section("Lineage", "lineage", ["No tasks."])
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
    return Section("Lineage", "lineage", blocks)


def artifacts_section(tasks: list[dict[str, Any]]) -> Section:
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
    return Section("Artifacts", "artifacts", blocks)


def workflow_sections(wf: sm.WorkflowRun) -> list[Section]:
    return [
        summary_section(wf),
        infrastructure_section(wf),
        timing_section(wf.tasks),
        io_section(wf.tasks),
        resources_section(sm.of_workflow(wf)),
        lineage_section(wf.tasks),
        artifacts_section(wf.tasks),
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
    return Section("Campaign summary", "campaign", [items, table] + ([note] * bool(note)))


def build(data: sm.Dataset) -> Document:
    """The card's content for one workflow, or a campaign card for several."""
    tasks = data.tasks
    wfs = data.workflows
    intro: list[Block] = [
        f"Built by provwh {__version__} from {plural(data.record_count, 'record')}: "
        f"{plural(len(wfs), 'workflow')}, {plural(len(tasks), 'task')}."
    ]
    if data.other_records:
        other = ", ".join(f"{k}: {n}" for k, n in data.other_records.items())
        intro.append(f"Records that are neither workflows nor tasks were left out ({other}).")
    if not wfs:
        intro.append("No workflow or task records in the input.")
        return Document("Provenance card", intro, [])
    if len(wfs) == 1:
        return Document(f"Provenance card: {wfs[0].label}", intro, workflow_sections(wfs[0]))
    sections = [campaign_section(data)]
    for wf in wfs:
        title = f"Workflow {wf.name}" if wf.name else "Workflow"
        if wf.workflow_id:
            title += f" (`{wf.workflow_id}`)"
        sections.append(Section(title, "workflow", [], workflow_sections(wf)))
    return Document("Campaign provenance card", intro, sections)
