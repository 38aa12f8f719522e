"""The SQL behind ``DBAPI.query``: records of a collection matching a Mongo-style filter,
and aggregations over them (grouped by one field).
"""

from __future__ import annotations

from typing import Any

from provwh.core.gcpause import gc_paused
from provwh.query import value_sort
from provwh.query.backends import Backend
from provwh.query.filters import FilterCompiler, _sort_spec
from provwh.query.frag import TRUE, Frag, Raw, all_of, join, sql, stored
from provwh.query.paths import (
    BYTES,
    COLLATE,
    DUCK,
    FLOAT,
    INT,
    PG,
    TEXT,
    TIME,
    Collection,
    ColumnPath,
    JsonPath,
    MissingPath,
    ValuesPath,
    resolve,
)
from provwh.query.results import loads_json, mongo_key, project, projection_spec, to_record
from provwh.warehouse.escape import unescape_text
from provwh.warehouse.times import datetime_to_epoch

AGGREGATIONS = ("avg", "sum", "min", "max", "count")
# PostgreSQL: a filter on one workflow of at most this many tasks tests its used / generated
# conditions task by task (``FilterCompiler.probe_values``): ~3-5 us a task
PROBE_MAX = 20_000


def limit_of(limit: Any) -> int:
    """A query's ``limit``, checked (0: no limit)."""
    if limit is None:
        return 0
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be a non-negative integer (0: no limit), got {limit!r}")
    return limit


def find(
    backend: Backend,
    coll: Collection,
    filter: dict | None,
    projection: Any,
    limit: int,
    sort: Any,
    skip: int = 0,
) -> list[dict[str, Any]]:
    """The records of ``coll`` matching ``filter`` (see ``DBAPI.query``); ``skip`` leaves out
    the first records of that order (paging: the order always ends with the table's keys)."""
    spec = projection_spec(projection)
    probe = _probe_values(backend, coll, filter)
    comp = FilterCompiler(coll, backend.dialect, probe_values=probe)
    where = all_of([comp.where(filter), latest_only(coll)])
    columns = columns_for(coll, spec, backend.dialect)
    q = None if probe else _value_sorted_page(backend, coll, columns, where, sort, limit, skip)
    if q is None and limit and backend.dialect is DUCK:
        q = _late_rows(coll, columns, where, comp.order_by(sort), limit, skip, comp)
    elif q is None:
        order = comp.order_by(sort)
        q = sql(
            f"SELECT {', '.join(columns)} FROM {coll.table} t {{}} WHERE {{}} ORDER BY {{}}",
            comp.sort_joins(),
            where,
            order,
        )
        if limit:
            q = sql("{} LIMIT {}", q, Raw(str(limit)))
        if skip:
            q = sql("{} OFFSET {}", q, Raw(str(limit_of(skip))))
    with gc_paused():  # a large result takes half the time without the cycle search
        # probing: the plan's cost counts every probe in full (~550,000 for 10,000 tasks),
        # past the server's JIT thresholds; compiling took ~200 ms of a 55 ms query
        names, rows = backend.query(q, jit=not probe)
        records = [to_record(coll, names, row) for row in rows]
        if spec is not None:
            fields, include = spec
            records = [project(r, fields, include) for r in records]
    return records


def _probe_values(backend: Backend, coll: Collection, flt: Any) -> bool:
    """PostgreSQL: whether ``flt`` names one workflow of few tasks (``PROBE_MAX``) and
    conditions on used / generated values, best tested task by task.

    The planner's estimate of the workflow's tasks first (0.3 ms): a workflow it sees as large
    costs nothing more. One it sees as small is counted, the count stopping at
    ``PROBE_MAX + 1`` (an index-only scan, ~4 ms for 10,000 tasks): a workflow grown since
    the statistics were taken is not probed task by task."""
    if backend.dialect.name != "postgresql" or coll.table != "tasks" or not isinstance(flt, dict):
        return False
    workflow = flt.get("workflow_id")
    if not isinstance(workflow, str) or not any(
        isinstance(k, str) and k.startswith(("used.", "generated.")) for k in flt
    ):
        return False
    tasks = sql("SELECT 1 FROM tasks WHERE workflow_id = CAST({} AS TEXT)", stored(workflow))
    plan = backend.query(sql("EXPLAIN (FORMAT JSON) {}", tasks))[1][0][0]
    if plan[0]["Plan"]["Plan Rows"] > PROBE_MAX:
        return False
    count = sql(f"SELECT count(*) FROM ({{}} LIMIT {PROBE_MAX + 1}) c_", tasks)
    return backend.query(count)[1][0][0] <= PROBE_MAX


def _value_sorted_page(
    backend: Backend,
    coll: Collection,
    columns: list[str],
    where: Frag,
    sort: Any,
    limit: int,
    skip: int,
) -> Frag | None:
    """A PostgreSQL page sorted on one used / generated key alone, descending: its ids from
    ``value_sort``, the query of its rows in the general order; None when the page is of
    another kind, or ``value_sort`` could not settle it (the general query then reads it)."""
    spec = _sort_spec(sort)
    if not limit or backend.dialect.name != "postgresql" or coll.table != "tasks":
        return None
    if len(spec) != 1 or spec[0][1] > 0:
        return None
    field = spec[0][0]
    p = resolve(coll, field)
    if not isinstance(p, ValuesPath):
        return None
    # the plan's cost counts every class in full, though most stop early or never run:
    # compiling it (JIT) took 0.3-0.9 s of a query that runs in 6 ms
    _names, found = backend.query(
        value_sort.page_ids(coll, where, field, p, limit + limit_of(skip)), jit=False
    )
    ids, exact = found[0]
    if not exact:
        return None
    outer = FilterCompiler(coll, PG)
    order = outer.order_by([(field, -1)])
    q = sql(
        f"SELECT {', '.join(columns)} FROM {coll.table} t {{}} WHERE t.task_id = ANY({{}})"
        " ORDER BY {} LIMIT {}",
        outer.sort_joins(),
        list(ids),
        order,
        Raw(str(limit)),
    )
    return sql("{} OFFSET {}", q, Raw(str(limit_of(skip)))) if skip else q


def _late_rows(
    coll: Collection,
    columns: list[str],
    where: Frag,
    order: Frag,
    limit: int,
    skip: int,
    comp: FilterCompiler,
) -> Frag:
    """A page of a DuckDB table with its rows read last: the order and the limit over the
    row ids first, then the columns of those rows only. DuckDB's top-N otherwise carries every
    column of every matching row (the tasks' JSON documents) through the sort: a page of 50
    of 100,000 tasks read 195 ms, by row id 20 ms. The order ends with the table's keys, so
    applying it again to the page gives the same rows in the same order (a sort on used /
    generated values joins them again: 30 ms at 100,000 tasks grouped, 170 ms laterally).

    Filtered and sorted on used / generated values, the matching tasks are found once and
    only their values grouped for the sort (``sort_ctes``), for the page and its rows alike."""
    page = f"LIMIT {limit}" + (f" OFFSET {limit_of(skip)}" if skip else "")
    scoped = None
    if where is not TRUE and coll.table == "tasks":
        scoped = comp.sort_ctes("SELECT tid_ FROM m_")
    if scoped is not None:
        ctes, joins = scoped
        return sql(
            "WITH m_ AS MATERIALIZED (SELECT t.rowid AS rid_, t.task_id AS tid_ FROM tasks t"
            " WHERE {}), {}, p_ AS MATERIALIZED (SELECT t.rowid AS rid_ FROM tasks t {}"
            f" WHERE t.rowid IN (SELECT rid_ FROM m_) ORDER BY {{}} {page})"
            f" SELECT {', '.join(columns)} FROM tasks t {{}}"
            " WHERE t.rowid IN (SELECT rid_ FROM p_) ORDER BY {}",
            where,
            ctes,
            joins,
            order,
            joins,
            order,
        )
    ids = sql(
        f"SELECT t.rowid FROM {coll.table} t {{}} WHERE {{}} ORDER BY {{}}",
        comp.sort_joins(),
        where,
        order,
    )
    ids = sql(f"{{}} {page}", ids)
    return sql(
        f"SELECT {', '.join(columns)} FROM {coll.table} t {{}} WHERE t.rowid IN ({{}})"
        " ORDER BY {}",
        comp.sort_joins(),
        ids,
        order,
    )


def aggregate(
    backend: Backend,
    coll: Collection,
    flt: Any,
    projection: Any,
    limit: int,
    sort: Any,
    aggregation: Any,
) -> list[dict[str, Any]]:
    spec = projection_spec(projection)
    if spec is not None and (not spec[1] or len(spec[0]) > 1):
        raise ValueError("with aggregation, projection names the one field to group by")
    aggs = _aggregation_spec(aggregation)
    d = backend.dialect
    comp = FilterCompiler(coll, d)
    joins: list[Frag] = []
    select: list[Frag] = []
    group_name = decode = None
    if spec is not None:
        group_field = spec[0][0]
        group_name = group_field.replace(".", "_")
        exprs, decode = _group_exprs(comp, resolve(coll, group_field), joins)
        select += exprs
    n_group = len(select)
    names = []
    for op, field in aggs:
        names.append(f"{op}_{field.replace('.', '_')}")
        select.append(_agg_expr(comp, op, resolve(coll, field), joins))
    where = all_of([comp.where(flt), latest_only(coll)])
    q = sql(
        f"SELECT {{}} FROM {coll.table} t {{}} WHERE {{}}",
        join(", ", select),
        join(" ", joins),
        where,
    )
    if n_group:
        q = sql("{} GROUP BY {}", q, Raw(", ".join(str(i + 1) for i in range(n_group))))
    out = []
    for row in backend.query(q)[1]:
        rec: dict[str, Any] = {}
        if decode is not None:
            rec[group_name] = decode(row[:n_group])
        for name, value in zip(names, row[n_group:], strict=True):
            rec[name] = unescape_text(value) if type(value) is str else value  # min / max
        out.append(rec)
    for field, direction in reversed(_sort_spec(sort)):
        key = group_name if field == "_id" else field
        if key not in (group_name, *names) or key is None:
            raise ValueError(
                f"sort field {field!r} is not in the aggregation result "
                f"({', '.join(n for n in (group_name, *names) if n)})"
            )
        out.sort(key=lambda r, k=key: mongo_key(r.get(k)), reverse=direction < 0)
    return out[:limit] if limit else out


def latest_only(coll: Collection) -> Frag:
    if coll.name != "objects":
        return TRUE
    return Frag(
        't."version" = (SELECT max(o_.version) FROM data_objects o_'
        " WHERE o_.object_id = t.object_id)"
    )


def columns_for(coll: Collection, spec: Any, dialect: Any) -> list[str]:
    """The columns to read for a projection: all when None; those holding the fields kept
    when including; all but the whole columns dropped when excluding (an excluded snapshot
    column is then neither read nor decoded).

    Times are read as epoch microseconds: exact, and much cheaper for the drivers than
    timestamps (``results.to_record`` turns them into float seconds).
    """
    names = list(coll.columns)
    if spec is not None and spec[1]:
        heads = {f.split(".")[0] for f in spec[0]}
        names = [c for c in names if c in heads or c == "extra"]
        for key in coll.keys:
            if key not in names:
                names.append(key)
    elif spec is not None:
        dropped = set(spec[0]) - set(coll.keys) - {"extra"}
        names = [c for c in names if c not in dropped]
    return [
        f"{dialect.epoch_us(Frag(f't.{_q(c)}')).sql} AS {_q(c)}"
        if coll.columns[c] == TIME
        else f"t.{_q(c)}"
        for c in names
    ]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _aggregation_spec(aggregation: Any) -> list[tuple[str, str]]:
    if isinstance(aggregation, tuple) and len(aggregation) == 2 and isinstance(aggregation[0], str):
        aggregation = [aggregation]
    if not isinstance(aggregation, (list, tuple)) or not aggregation:
        raise ValueError(f"aggregation must be a list of (operator, field), got {aggregation!r}")
    out = []
    for item in aggregation:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError(f"aggregation must be a list of (operator, field), got {item!r}")
        op, field = item
        if isinstance(op, str):
            op = op.lstrip("$")
        if op not in AGGREGATIONS:
            raise ValueError(
                f"unknown aggregation operator {item[0]!r}; supported: {', '.join(AGGREGATIONS)}"
            )
        if not isinstance(field, str) or not field:
            raise ValueError(f"aggregation field must be a non-empty string, got {field!r}")
        out.append((op, field))
    return out


def _value_join(comp: FilterCompiler, p: ValuesPath, joins: list[Frag]) -> str:
    alias = f"j{len(joins)}_"
    joins.append(
        sql(
            f"LEFT JOIN task_values {alias} ON {alias}.task_id = t.task_id"
            f" AND {alias}.direction = {{}} AND {alias}.key_path = {{}}",
            p.direction,
            p.key_path,
        )
    )
    return alias


def _group_exprs(comp: FilterCompiler, p: Any, joins: list[Frag]) -> tuple[list[Frag], Any]:
    """Expressions to group by for a path, and the function turning them into the value."""
    d = comp.d
    if isinstance(p, MissingPath):
        return [Frag("NULL")], lambda row: None
    if isinstance(p, ColumnPath):
        col = Frag(f't."{p.column}"')
        if p.kind == TIME:
            return [col], lambda row: None if row[0] is None else datetime_to_epoch(row[0])
        if p.kind == BYTES:
            return [col], lambda row: None if row[0] is None else bytes(row[0])
        if p.kind == TEXT:  # an id column: long ids as themselves, not their digest keys
            text = comp.text_col(p.column)
            return [text], lambda row: None if row[0] is None else unescape_text(row[0])
        return [col], lambda row: row[0]
    if isinstance(p, JsonPath):
        x = d.json_get(Frag(f't."{p.column}"'), p.keys)
        return [d.j_text(x)], lambda row: None if row[0] is None else loads_json(row[0])
    a = _value_join(comp, p, joins)
    cols = [
        Frag(f"{a}.value_type"),
        Frag(f"{a}.value_text"),
        Frag(f"{a}.value_num"),
        Frag(f"{a}.value_bool"),
        d.j_text(Frag(f"{a}.value_json")),
    ]
    return cols, _decode_value


def _decode_value(row: tuple) -> Any:
    """A used / generated value from its typed key/value columns."""
    vtype, text, num, flag, doc = row
    if vtype is None or vtype == "null":
        return None
    if vtype == "str":
        return loads_json(doc) if doc is not None else text
    if vtype == "int":
        return int(text) if text is not None else int(num)
    if vtype == "float":
        return num
    if vtype == "bool":
        return flag
    return loads_json(doc) if doc is not None else None


def _agg_expr(comp: FilterCompiler, op: str, p: Any, joins: list[Frag]) -> Frag:
    d = comp.d
    value: Frag
    text = False
    if isinstance(p, MissingPath):
        value = Frag("CAST(NULL AS DOUBLE PRECISION)")
    elif isinstance(p, ColumnPath):
        col = Frag(f't."{p.column}"')
        if p.kind == TIME:
            value = d.epoch(col)
        elif p.kind in (INT, FLOAT):
            value = sql("CAST({} AS DOUBLE PRECISION)", col)
        elif p.kind == TEXT:
            value, text = comp.text_col(p.column), True
        else:
            value = Frag("CAST(NULL AS DOUBLE PRECISION)")
    elif isinstance(p, JsonPath):
        x = d.json_get(Frag(f't."{p.column}"'), p.keys)
        value = x if op == "count" else d.j_num(x)
    else:
        a = _value_join(comp, p, joins)
        value = Frag(f"{a}.value_type" if op == "count" else f"{a}.value_num")
    if op == "count":
        return sql("count({})", value)
    if text:
        if op in ("min", "max"):
            return sql(f"{op}({{}}{COLLATE})", value)
        return Frag("CAST(NULL AS DOUBLE PRECISION)") if op == "avg" else Frag("0")
    if op == "sum":
        return sql("COALESCE(sum({}), 0)", value)
    return sql(f"{op}({{}})", value)
