"""The web UI: server-rendered pages; the charts drawn by one script over the vendored Apache
ECharts (everything served by provwh: ``/static/...``), their data from ``/ui-data/...``.

``/`` overview, ``/workflows`` (search, sort, paging), ``/workflows/{id}`` (summary, status,
activities, tasks paged and filtered in SQL), ``/tasks/{id}`` (used / generated, status,
parent and children, upstream / downstream), ``/campaigns`` and ``/campaigns/{id}``.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from provwh.serve import charts, records
from provwh.serve.html import (
    card,
    counts_text,
    duration,
    esc,
    fields,
    link,
    page,
    seconds,
    status,
    status_bar,
    table,
    url,
    value,
    when,
)
from provwh.serve.records import NotFound

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
TASK_FIELDS = ["task_id", "activity_id", "status", "started_at", "ended_at", "hostname"]
WF_FIELDS = ["workflow_id", "name", "campaign_id", "user", "status", "started_at", "ended_at"]
SORTS = {  # the sorts the tables offer: name -> (label, sort spec)
    "started": ("started (oldest first)", [("started_at", 1)]),
    "-started": ("started (newest first)", [("started_at", -1)]),
    "activity": ("activity", [("activity_id", 1), ("started_at", 1)]),
    "status": ("status", [("status", 1), ("started_at", 1)]),
    "name": ("name", [("name", 1)]),
}


def db_of(request: Request) -> Any:
    return request.app.state.db


def engine_of(db: Any) -> str:
    return db.backend.name


def html(text: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status_code)


@functools.cache
def _style() -> str:
    return resources.files("provwh.serve").joinpath("style.css").read_text("utf-8")


@router.get("/static/style.css")
def style() -> Response:
    return Response(_style(), media_type="text/css", headers={"Cache-Control": "max-age=300"})


MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@functools.cache
def _static_files() -> dict[str, Any]:
    """``/static/`` path -> resource: ``charts.js`` and ``vendor/<library>/<file>``."""
    root = resources.files("provwh.serve").joinpath("static")
    found = {name: root.joinpath(name) for name in ("charts.js", "live.js")}
    for lib in root.joinpath("vendor").iterdir():
        if lib.is_dir():
            for f in lib.iterdir():
                if f.is_file():
                    found[f"vendor/{lib.name}/{f.name}"] = f
    return found


@functools.cache
def _static_bytes(name: str) -> bytes:
    return _static_files()[name].read_bytes()


@router.get("/static/{name:path}")
def static(name: str) -> Response:
    """The UI's script and the vendored libraries with their licences (nothing else)."""
    if name not in _static_files():
        raise NotFound(f"No such file: /static/{name}")
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name.rsplit("/", 1)[-1] else ""
    media = MEDIA_TYPES.get(suffix, "text/plain; charset=utf-8")
    age = 86400 if name.startswith("vendor/") else 300
    return Response(
        _static_bytes(name), media_type=media, headers={"Cache-Control": f"max-age={age}"}
    )


# --- chart data ---------------------------------------------------------------------------------

DEPTHS = (1, 2, 3, 5, 10)


def _workflow_record(db: Any, workflow_id: str) -> dict[str, Any]:
    found = db.workflow_query({"workflow_id": workflow_id}, limit=1)
    if not found:
        raise NotFound(f"Workflow not found: {workflow_id}")
    return found[0]


@router.get("/ui-data/workflows/{workflow_id}/{chart}")
def workflow_chart(
    workflow_id: str,
    chart: str,
    depth: int | None = Query(None, ge=0, le=50),
    db: Any = Depends(db_of),
) -> Response:
    """A workflow chart's data: ``timeline``, ``telemetry``, ``dag`` or ``lineage``
    (``?depth=N`` steps beyond the workflow; none: all)."""
    if chart not in ("timeline", "telemetry", "dag", "lineage"):
        raise NotFound(f"No such chart: {chart}")
    with db.hold():
        wf = _workflow_record(db, workflow_id)
        if chart == "timeline":
            data = charts.timeline(db, workflow_id)
        elif chart == "telemetry":
            cores = charts._num(
                ((wf.get("machine_info") or {}).get("cpu") or {}).get("logical")
                if isinstance(wf.get("machine_info"), dict) else None
            )  # fmt: skip
            data = charts.telemetry(db, workflow_id, cores)
        else:
            data = charts.workflow_graph(db, workflow_id, chart, depth)
    return Response(records.json_bytes(data), media_type="application/json")


@router.get("/ui-data/tasks/{task_id}/graph")
def task_chart(
    task_id: str, depth: int | None = Query(1, ge=0, le=50), db: Any = Depends(db_of)
) -> Response:
    """A task's upstream / downstream graph to ``depth``."""
    with db.hold():
        if not db.task_query({"task_id": task_id}, ["task_id"], limit=1):
            raise NotFound(f"Task not found: {task_id}")
        data = charts.task_graph(db, task_id, depth)
    return Response(records.json_bytes(data), media_type="application/json")


def chart_box(chart_id: str, kind: str, src: str, height: int = 320, extra: str = "") -> str:
    """A chart's place on a page: drawn by /static/charts.js from ``src`` (a note without JS)."""
    return (
        f'<figure class="chart" id="{esc(chart_id)}" data-chart="{esc(kind)}"'
        f' data-src="{esc(src)}">{extra}<div class="plot" style="height:{height}px">'
        '<noscript><p class="muted">The charts need JavaScript; the tables show the same'
        ' records.</p></noscript></div><figcaption class="notes muted"></figcaption></figure>'
    )


SCRIPTS = (
    '<script src="/static/vendor/echarts/echarts.min.js" defer></script>'
    '<script src="/static/charts.js" defer></script>'
)
LIVE_SCRIPT = '<script src="/static/live.js" defer></script>'
LIVE_POLL_S = 2  # the live page's stream: poll interval where nothing pushes (DuckDB)
ACTIVE_STATUSES = ("RUNNING", "SUBMITTED", "WAITING")


# --- overview -------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def overview(db: Any = Depends(db_of)) -> HTMLResponse:
    with db.hold():
        n_wf = db.query(None, aggregation=[("count", "workflow_id")], collection="workflows")
        summary = db.task_summary()
        recent = db.workflow_query({}, WF_FIELDS, limit=15, sort=[("started_at", -1)])
        running = db.workflow_query(
            {"status": "RUNNING"}, WF_FIELDS, limit=15, sort=[("started_at", -1)]
        )
        camps = records.campaigns(db)
    n_workflows = n_wf[0]["count_workflow_id"] if n_wf else 0
    body = [
        "<h1>Overview</h1>",
        '<div class="cards">',
        card("workflows", n_workflows),
        card("tasks", summary["count"]),
        card("campaigns", len(camps)),
        card("activities", len(summary["activity_stats"])),
        "</div>",
    ]
    if summary["status_counts"]:
        body.append(
            f"<p>Tasks by status: {counts_text(summary['status_counts'])}</p>"
            + status_bar(summary["status_counts"])
        )
    body += ["<h2>Recent workflows</h2>", _workflows_table(recent)]
    body += ["<h2>Running workflows</h2>", _workflows_table(running)]
    body += ["<h2>Recent campaigns</h2>", _campaigns_table(camps[:10])]
    return html(page("Overview", "\n".join(body), engine_of(db)))


def _workflows_table(wfs: list[dict[str, Any]]) -> str:
    rows = [
        [
            link(url("/workflows", w["workflow_id"]), w.get("name") or w["workflow_id"]),
            esc(w.get("campaign_id")),
            esc(w.get("user")),
            status(w.get("status")),
            when(w.get("started_at")),
            duration(w),
        ]
        for w in wfs
    ]
    return table(["workflow", "campaign", "user", "status", "started (UTC)", "duration"], rows)


def _campaigns_table(camps: list[dict[str, Any]]) -> str:
    rows = [
        [
            link(url("/campaigns", c["campaign_id"]), c["campaign_id"]),
            str(c["workflow_count"]),
            str(c["task_count"]),
            esc(", ".join(map(str, c["workflow_names"]))),
            when(c["first_ts"]),
            when(c["last_ts"]),
        ]
        for c in camps
    ]
    headers = ["campaign", "workflows", "tasks", "workflow names", "first", "last"]
    return table(headers, rows, numeric=(1, 2))


# --- workflows ------------------------------------------------------------------------------


@router.get("/workflows", response_class=HTMLResponse)
def workflows(
    q: str | None = Query(None, max_length=200),
    sort: str = Query("-started"),
    page_no: int = Query(1, alias="page", ge=1),
    db: Any = Depends(db_of),
) -> HTMLResponse:
    flt: dict[str, Any] = {}
    if q:
        flt = {"$or": [
            {"name": {"$regex": re.escape(q), "$options": "i"}},
            {"workflow_id": {"$regex": re.escape(q), "$options": "i"}},
        ]}  # fmt: skip
    spec = SORTS.get(sort, SORTS["-started"])[1]
    found = records.page(
        db.workflow_query, flt, PAGE_SIZE, (page_no - 1) * PAGE_SIZE, spec, WF_FIELDS
    )
    options = "".join(
        f'<option value="{k}"{" selected" if k == sort else ""}>{esc(label)}</option>'
        for k, (label, _) in SORTS.items()
        if k != "activity" and k != "status"
    )
    body = [
        "<h1>Workflows</h1>",
        '<form class="filters" method="get" action="/workflows">',
        f'<input name="q" placeholder="name or id" value="{esc(q)}">',
        f'<select name="sort">{options}</select><button>Search</button></form>',
        _workflows_table(found["items"]),
        _pager("/workflows", page_no, found, q=q, sort=sort),
    ]
    return html(page("Workflows", "\n".join(body), engine_of(db)))


def _pager(path: str, page_no: int, found: dict[str, Any], **params: Any) -> str:
    first, last = found["offset"] + 1, found["offset"] + found["count"]
    shown = f"{first}–{last}" if found["count"] else "none on this page"
    parts = [f"<span>{shown}</span>"]
    if page_no > 1:
        parts.append(link(url(path, page=page_no - 1, **params), "← previous"))
    if found["next_offset"] is not None:
        parts.append(link(url(path, page=page_no + 1, **params), "next →"))
    return f'<div class="pager">{" ".join(parts)}</div>'


@router.get("/workflows/{workflow_id}", response_class=HTMLResponse)
def workflow(
    workflow_id: str,
    activity: str | None = Query(None, max_length=1000),
    task_status: str | None = Query(None, alias="status", max_length=100),
    sort: str = Query("started"),
    page_no: int = Query(1, alias="page", ge=1),
    depth: int = Query(1, ge=0, le=50),
    db: Any = Depends(db_of),
) -> HTMLResponse:
    with db.hold():
        found = db.workflow_query({"workflow_id": workflow_id}, limit=1)
        if not found:
            raise NotFound(f"Workflow not found: {workflow_id}")
        wf = found[0]
        summary = db.task_summary(workflow_id=workflow_id)
        flt = records.with_fields(
            {"workflow_id": workflow_id}, activity_id=activity, status=task_status
        )
        spec = SORTS.get(sort, SORTS["started"])[1]
        tasks = records.page(
            db.task_query, flt, PAGE_SIZE, (page_no - 1) * PAGE_SIZE, spec, TASK_FIELDS
        )
        running = wf.get("ended_at") is None or any(
            summary["status_counts"].get(s) for s in ACTIVE_STATUSES
        )
        since = db.newest_load("tasks").seconds if running else None
    title = wf.get("name") or workflow_id
    info = [
        ("id", f"<code>{esc(workflow_id)}</code>"),
        ("name", esc(wf.get("name"))),
        ("status", status(wf.get("status"))),
        (
            "campaign",
            link(url("/campaigns", wf["campaign_id"]), wf["campaign_id"])
            if wf.get("campaign_id")
            else "",
        ),  # fmt: skip
        ("user", esc(wf.get("user"))),
        ("started (UTC)", when(wf.get("started_at"))),
        ("ended (UTC)", when(wf.get("ended_at"))),
        ("duration", duration(wf)),
        ("tasks", f"{summary['count']} ({counts_text(summary['status_counts'])})"),
        ("API", link(url("/api/v1/workflows", workflow_id), "JSON")),
    ]
    if wf.get("parent_workflow_id"):
        pid = wf["parent_workflow_id"]
        info.append(("parent workflow", link(url("/workflows", pid), pid)))
    act_rows = [
        [
            link(url("/workflows", workflow_id, activity=a["activity_id"]), a["activity_id"]),
            str(a["count"]),
            status_bar(a["status_counts"]) + f'<span class="muted">'
            f"{counts_text(a['status_counts'])}</span>",
            seconds(a["avg_duration"]),
            seconds(a["min_duration"]),
            seconds(a["max_duration"]),
            seconds(a["sum_duration"]),
        ]
        for a in summary["activity_stats"]
    ]
    task_rows = [
        [
            link(url("/tasks", t["task_id"]), t["task_id"]),
            esc(t.get("activity_id")),
            status(t.get("status")),
            when(t.get("started_at")),
            duration(t),
            esc(t.get("hostname")),
        ]
        for t in tasks["items"]
    ]
    statuses = sorted(summary["status_counts"])
    sort_opts = "".join(
        f'<option value="{k}"{" selected" if k == sort else ""}>{esc(label)}</option>'
        for k, (label, _) in SORTS.items()
        if k != "name"
    )
    act_opts = '<option value="">all activities</option>' + "".join(
        f"<option{' selected' if a['activity_id'] == activity else ''}>"
        f"{esc(a['activity_id'])}</option>"
        for a in summary["activity_stats"]
        if a["activity_id"] is not None
    )
    status_opts = '<option value="">all statuses</option>' + "".join(
        f"<option{' selected' if s == task_status else ''}>{esc(s)}</option>" for s in statuses
    )
    body = [
        f"<h1>Workflow {esc(title)}</h1>",
        *(_live(workflow_id, since) if running else []),
        f'<div data-live="summary">{fields(info)}</div>',
        "<h2>Activities</h2>",
        '<div data-live="activities">',
        table(
            ["activity", "tasks", "status", "avg", "min", "max", "total"],
            act_rows,
            numeric=(1, 3, 4, 5, 6),
        ),
        "</div>",
        *_workflow_charts(workflow_id, depth),
        "<h2>Tasks</h2>",
        f'<form class="filters" method="get" action="{esc(url("/workflows", workflow_id))}">',
        f'<select name="activity">{act_opts}</select>',
        f'<select name="status">{status_opts}</select>',
        f'<select name="sort">{sort_opts}</select><button>Show</button></form>',
        '<div data-live="tasks">',
        table(["task", "activity", "status", "started (UTC)", "duration", "host"], task_rows),
        _pager(
            url("/workflows", workflow_id),
            page_no,
            tasks,
            activity=activity,
            status=task_status,
            sort=sort,
        ),  # fmt: skip
        "</div>",
    ]
    scripts = SCRIPTS + (LIVE_SCRIPT if running else "")
    return html(page(f"Workflow {title}", "\n".join(body), engine_of(db), scripts))


def _live(workflow_id: str, since: float | None) -> list[str]:
    """A running workflow's page follows its tasks as they load (``static/live.js``: the
    ``/api/v1/stream/tasks`` stream from ``since``, the page's newest load time; the
    ``data-live`` parts fetched again as tasks land). Nothing without JavaScript."""
    src = url("/api/v1/stream/tasks", workflow_id=workflow_id, since=since,
              poll_interval=LIVE_POLL_S)  # fmt: skip
    return [f'<p class="live muted" data-live-src="{esc(src)}" data-live-note></p>']


def _workflow_charts(workflow_id: str, depth: int) -> list[str]:
    data = url("/ui-data/workflows", workflow_id)
    here = url("/workflows", workflow_id)
    depths = sorted({*DEPTHS, depth})
    opts = "".join(
        f'<option value="{d}"{" selected" if d == depth else ""}>{d}</option>' for d in depths
    )
    depth_form = (
        f'<form class="filters" method="get" action="{esc(here)}#chart-lineage"'
        ' data-depth-for="chart-lineage"><label>steps beyond the workflow'
        f' <select name="depth">{opts}</select></label><button>Show</button></form>'
    )
    return [
        "<h2>Timeline</h2>",
        chart_box("chart-timeline", "timeline", data + "/timeline", 160),
        "<h2>Telemetry</h2>",
        chart_box("chart-telemetry", "telemetry", data + "/telemetry", 440),
        '<div class="cols">',
        "<div><h2>Task graph</h2>",
        chart_box("chart-dag", "graph", data + "/dag", 420),
        "</div>",
        "<div><h2>Data lineage</h2>",
        depth_form,
        chart_box("chart-lineage", "graph", url(data + "/lineage", depth=depth), 420),
        "</div>",
        "</div>",
    ]


# --- tasks ----------------------------------------------------------------------------------


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
def task(
    task_id: str,
    depth: int = Query(1, ge=1, le=50),
    db: Any = Depends(db_of),
) -> HTMLResponse:
    with db.hold():
        found = db.task_query({"task_id": task_id}, limit=1)
        if not found:
            raise NotFound(f"Task not found: {task_id}")
        t = found[0]
        children = db.task_query({"parent_task_id": task_id}, TASK_FIELDS, limit=PAGE_SIZE + 1)
        up = db.get_upstream(task_id, depth)
        down = db.get_downstream(task_id, depth)
        wf = None
        if t.get("workflow_id"):
            wfs = db.workflow_query({"workflow_id": t["workflow_id"]}, ["name"], limit=1)
            wf = wfs[0] if wfs else None
    wf_id = t.get("workflow_id")
    wf_name = (wf or {}).get("name") or wf_id
    info = [
        ("id", f"<code>{esc(task_id)}</code>"),
        ("activity", esc(t.get("activity_id"))),
        ("status", status(t.get("status"))),
        ("workflow", link(url("/workflows", wf_id), wf_name) if wf_id else ""),
        (
            "campaign",
            link(url("/campaigns", t["campaign_id"]), t["campaign_id"])
            if t.get("campaign_id")
            else "",
        ),  # fmt: skip
        (
            "parent task",
            link(url("/tasks", t["parent_task_id"]), t["parent_task_id"])
            if t.get("parent_task_id")
            else "",
        ),  # fmt: skip
        ("started (UTC)", when(t.get("started_at"))),
        ("ended (UTC)", when(t.get("ended_at"))),
        ("duration", duration(t)),
        ("host", esc(t.get("hostname"))),
        ("API", link(url("/api/v1/tasks", task_id), "JSON")),
    ]
    body = [f"<h1>Task {esc(t.get('activity_id') or task_id)}</h1>", fields(info)]
    if t.get("stderr"):
        body.append(f'<h2>Error</h2><div class="error-box"><pre>{esc(t["stderr"])}</pre></div>')
    cols = []
    for key, label in (("used", "Used"), ("generated", "Generated")):
        vals = t.get(key)
        # by name: PostgreSQL's JSONB keeps no key order, and the page reads the same on both
        items = sorted(vals.items(), key=lambda kv: str(kv[0])) if isinstance(vals, dict) else []
        rows = [[esc(k), value(v)] for k, v in items]
        cols.append(f"<div><h2>{label}</h2>{table(['name', 'value'], rows)}</div>")
    body.append(f'<div class="cols">{"".join(cols)}</div>')

    def related(items: list[dict[str, Any]]) -> str:
        rows = [
            [
                link(url("/tasks", r["task_id"]), r["task_id"]),
                esc(r.get("activity_id")),
                status(r.get("status")),
                str(r["depth"]),
            ]
            for r in items
        ]
        return table(["task", "activity", "status", "depth"], rows, numeric=(3,))

    more = link(url("/tasks", task_id, depth=depth + 1), f"depth {depth + 1}")
    body += [
        f'<p class="muted">Lineage to depth {depth} ({more}).</p>',
        '<div class="cols">',
        f"<div><h2>Upstream</h2>{related(up)}</div>",
        f"<div><h2>Downstream</h2>{related(down)}</div>",
        "</div>",
        "<h2>Lineage graph</h2>",
        chart_box("chart-task", "graph", url("/ui-data/tasks", task_id, "graph", depth=depth), 380),
    ]
    if children:
        rows = [
            [link(url("/tasks", c["task_id"]), c["task_id"]), esc(c.get("activity_id")),
             status(c.get("status")), duration(c)]
            for c in children[:PAGE_SIZE]
        ]  # fmt: skip
        body += ["<h2>Children</h2>", table(["task", "activity", "status", "duration"], rows)]
    return html(
        page(f"Task {t.get('activity_id') or task_id}", "\n".join(body), engine_of(db), SCRIPTS)
    )


# --- campaigns ------------------------------------------------------------------------------


@router.get("/campaigns", response_class=HTMLResponse)
def campaigns_page(db: Any = Depends(db_of)) -> HTMLResponse:
    with db.hold():
        camps = records.campaigns(db)
    body = ["<h1>Campaigns</h1>", _campaigns_table(camps)]
    return html(page("Campaigns", "\n".join(body), engine_of(db)))


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign(campaign_id: str, db: Any = Depends(db_of)) -> HTMLResponse:
    with db.hold():
        found = records.campaigns(db, campaign_id)
        if not found:
            raise NotFound(f"Campaign not found: {campaign_id}")
        wfs = db.workflow_query({"campaign_id": campaign_id}, WF_FIELDS)
        summary = db.task_summary({"campaign_id": campaign_id})
    c = found[0]
    info = [
        ("id", f"<code>{esc(campaign_id)}</code>"),
        ("workflows", str(c["workflow_count"])),
        ("tasks", f"{summary['count']} ({counts_text(summary['status_counts'])})"),
        ("users", esc(", ".join(map(str, c["users"])))),
        ("first (UTC)", when(c["first_ts"])),
        ("last (UTC)", when(c["last_ts"])),
        ("API", link(url("/api/v1/campaigns", campaign_id), "JSON")),
    ]
    body = [
        f"<h1>Campaign {esc(campaign_id)}</h1>",
        fields(info),
        "<h2>Workflows</h2>",
        _workflows_table(wfs),
    ]
    return html(page(f"Campaign {campaign_id}", "\n".join(body), engine_of(db)))


def error_page(status_code: int, detail: str, engine: str = "") -> HTMLResponse:
    body = f'<h1>{status_code}</h1><div class="error-box">{esc(detail)}</div>'
    return html(page(str(status_code), body, engine), status_code)
