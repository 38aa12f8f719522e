"""A page of tasks sorted on one used / generated key, on PostgreSQL, without sorting them all.

The general query (``find``) computes every matching task's sort value (the minimum of each
typed column of its rows on the key: ``FilterCompiler.sort_keys``) and sorts them: when half
of a workflow of 100,000 tasks matched ``used.x >= v``, a page sorted on ``used.x`` took
600 ms, 50,000 probes of ``tasks`` and as many of ``task_values``. That order ranks a task by
the type of its value first, so the tasks fall into three classes, each read on its own:

- rank 0: a null on the key, or no row there (missing sorts as null): the general query;
- rank 1: a number and no null. A task's value is its smallest number, so walking the key's
  rows in ``(key_path, value_num)`` index order and keeping each task at its smallest row (no
  other of its numbers on the key comes before it) lists these tasks in order; the ties of
  one number are sorted on the rest of the order, and the walk stops with the page. The walk
  reads the key's numbers of every task, so it gives up after ``walk_length`` of them: a
  page of one workflow among many may lie far down (then the general query reads it);
- rank 2 and above: no number and no null (strings, dicts, lists, booleans): the general
  query over the tasks holding such a row.

Descending, the classes come ranks high to low, each read only while the ones before it leave
the page (``skip + limit`` rows) short; the caller orders the ids found as the general query
does, so the page is the same rows in the same order, from two queries. Ascending, missing
values come first,
and finding that none of the matching tasks misses the key means reading them all: those
pages stay with the general query.
"""

from __future__ import annotations

from provwh.query.filters import FilterCompiler
from provwh.query.frag import Frag, Raw, join, sql
from provwh.query.paths import PG, Collection, ValuesPath
from provwh.warehouse.values import INDEXED_KEY_PATH_CHARS, KEY_PATH_INDEXED

# up to this many tasks of rank 2 or more on the key are tested one by one (as the numbers
# are); more, as the general query does (all matching tasks found first, then sorted)
FEW = 1000
# the walk over the numbers reads at most this many rows per row of the page (and this many at
# least): each costs a few index probes, ~10-20 us, when no task it reaches matches
WALK_PER_ROW, WALK_MIN = 20, 500


def page_ids(coll: Collection, where: Frag, field: str, p: ValuesPath, rows: int) -> Frag:
    """One row: the ids of the first ``rows`` tasks matching ``where`` (compiled for alias
    ``t``) in the descending order of ``field`` (resolved to ``p``), then the table's default
    order; and whether they are exact (else the caller runs the general query).

    The walk reads at most ``walk_length(rows)`` of the key's numbers (of every task in the
    warehouse: a filter on one workflow may match none of the highest), reads tasks as
    ``o_`` and tests ``where`` on each task it reaches, in a subquery the planner keeps as it
    is (``OFFSET 0``): joined, it would rather find every task matching it first (it
    misjudges how many a ``used.*`` condition matches), the cost this module avoids. Its page
    is exact when the walk saw every number, or when the page's last number is above the
    walk's last (every task at or above it was seen, its ties with it). A few tasks of rank 2
    or more are tested one by one too; many, and the nulls, are read as the general query
    reads them."""
    general, reached = (FilterCompiler(coll, PG, alias=a) for a in ("t", "o_"))
    limit = Raw(str(rows))
    walk = walk_length(rows)

    def ordered(comp: FilterCompiler) -> tuple[list[Frag], Frag, Frag]:
        terms = comp.sort_keys(field, True)  # rank, number, text, boolean (alias s0_)
        return terms, comp.order_by(None), comp.sort_joins(lateral=True)

    terms, default, joins = ordered(general)
    order = join(", ", [*terms, default])
    many = sql(
        "SELECT t.task_id FROM k_ JOIN tasks t ON t.task_id = k_.task_id {}"
        f" WHERE (SELECT count(*) FROM k_) > {FEW} AND s0_.r >= 2 AND {{}}"
        " ORDER BY {} LIMIT {}",
        joins,
        where,
        order,
        limit,
    )
    nulls = sql(
        "SELECT t.task_id FROM tasks t {} WHERE COALESCE(s0_.r, 0) = 0 AND {} ORDER BY {} LIMIT {}",
        joins,
        where,
        order,
        limit,
    )
    terms, default, joins = ordered(reached)
    matches = sql(
        "EXISTS (SELECT 1 FROM tasks t WHERE t.task_id = o_.task_id AND {} OFFSET 0)", where
    )
    few = sql(
        "SELECT o_.task_id FROM k_ JOIN tasks o_ ON o_.task_id = k_.task_id {}"
        f" WHERE (SELECT count(*) FROM k_) <= {FEW} AND s0_.r >= 2 AND {{}}"
        " ORDER BY {} LIMIT {}",
        joins,
        matches,
        join(", ", [*terms, default]),
        limit,
    )
    highest = sql(  # the key's highest numbers, in the index's order, backwards
        "SELECT w_.task_id, w_.value_num, w_.ordinal FROM task_values w_ WHERE {}"
        f" AND w_.value_num IS NOT NULL ORDER BY w_.value_num DESC LIMIT {walk}",
        _key_rows(p, "w_"),
    )
    numbers = sql(  # (the walk read again, not from walk_: a CTE's rows lose their order)
        "SELECT o_.task_id, w_.value_num FROM ({}) w_ JOIN tasks o_ ON o_.task_id = w_.task_id"
        " {} WHERE NOT EXISTS (SELECT 1 FROM task_values x_ WHERE x_.task_id = w_.task_id"
        " AND {} AND (x_.value_type = 'null' OR x_.value_num < w_.value_num"
        " OR (x_.value_num = w_.value_num AND x_.ordinal < w_.ordinal)) OFFSET 0) AND {}"
        " ORDER BY w_.value_num DESC, {} LIMIT {}",
        highest,
        joins,
        _key_rows(p, "x_", indexed=False),
        matches,
        join(", ", [*terms[2:], default]),
        limit,
    )
    ctes = [
        # the tasks with a value of rank 2 or more on the key (no number, no null among them)
        sql(
            "k_ AS MATERIALIZED (SELECT DISTINCT x_.task_id FROM task_values x_ WHERE {}"
            " AND x_.value_num IS NULL AND x_.value_type <> 'null')",
            _key_rows(p, "x_"),
        ),
        sql("walk_ AS MATERIALIZED ({})", highest),
    ]
    names: list[str] = []
    walked_all = f"(SELECT count(*) FROM walk_) < {walk}"
    for i, part in enumerate((few, many, numbers, nulls)):
        if names:  # read only while the classes before it leave the page short
            gate = f"{_count(names)} < {rows}"
            if part is nulls:  # and after every number: else the page is not settled here
                gate += f" AND {walked_all}"
            part = sql(f"SELECT * FROM ({{}}) q_ WHERE {gate}", part)
        names.append(f"c{i}_")
        ctes.append(sql(f"{names[-1]} AS MATERIALIZED ({{}})", part))
    exact = (
        f"{_count(names[:2])} >= {rows} OR {walked_all}"
        f" OR ({_count(names[:3])} >= {rows}"
        " AND (SELECT min(value_num) FROM c2_) > (SELECT min(value_num) FROM walk_))"
    )
    union = " UNION ALL ".join(f"SELECT task_id FROM {n}" for n in names)
    return sql(f"WITH {{}} SELECT ARRAY({union}), {exact}", join(", ", ctes))


def walk_length(rows: int) -> int:
    """How many of the key's numbers a page of ``rows`` walks before giving up."""
    return max(WALK_MIN, WALK_PER_ROW * rows)


def _count(names: list[str]) -> str:
    return " + ".join(f"(SELECT count(*) FROM {n})" for n in names)


def _key_rows(p: ValuesPath, alias: str, indexed: bool = True) -> Frag:
    """``alias``'s rows on ``p`` (``indexed``: with the condition that lets the partial
    ``(key_path, value_num)`` index serve them)."""
    cond = f"{alias}.direction = {{}} AND {alias}.key_path = {{}}"
    if indexed and len(p.key_path) <= INDEXED_KEY_PATH_CHARS:
        cond += " AND " + KEY_PATH_INDEXED.replace("key_path", f"{alias}.key_path")
    return sql(cond, p.direction, p.key_path)
