"""Dotted field paths -> SQL expressions, per collection and per engine.

A Flowcept field path (``status``, ``used.x``, ``custom_metadata.owner``,
``telemetry_at_end.cpu.percent_all``) resolves to one of three places:

- a **column** of the collection's table (``status``, ``started_at``, ``version``);
- a task's **key/value rows** (``used.x`` and ``generated.loss`` of tasks: ``task_values``, typed,
  indexed, the same SQL on both engines), unless the path steps into a list (a numeric segment);
- a **JSON document** (any other nested path; unknown top-level fields live in ``extra``).

Keys never become SQL text: JSON paths are bound parameters (a text array in PostgreSQL, a JSON
pointer in DuckDB) and columns come from the table definition. The two ``Dialect`` classes hold
the only engine-specific SQL of the query layer. SQL is written with ``?`` placeholders; the
PostgreSQL backend turns them into ``%s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from provwh.query.frag import Frag, Raw, sql
from provwh.warehouse.engines import LOADER_APPLICATION
from provwh.warehouse.escape import escape_text

TEXT, JSON, TIME, INT, FLOAT, BOOL, BYTES = "text", "json", "time", "int", "float", "bool", "bytes"
COLLATE = ' COLLATE "C"'  # byte order on both engines, whatever the database's collation


@dataclass(frozen=True)
class Collection:
    """A Flowcept collection and the table that holds it."""

    name: str
    table: str
    keys: tuple[str, ...]
    columns: dict[str, str]  # column -> kind
    values_table: bool = False  # used / generated exploded into task_values
    time_order: str | None = None  # default order: this time column, then the keys
    ids: frozenset[str] = frozenset()  # id columns: a long id is its digest key (escape.py)


def collection(name: str) -> Collection:
    """``tasks``, ``workflows``, ``objects`` (latest versions), ``object_history`` or
    ``agents``."""
    if not isinstance(name, str):
        raise ValueError(f"collection must be a string, got {name!r}")
    return _collection(name)


@cache
def _collection(name: str) -> Collection:
    from provwh.warehouse import ddl
    from provwh.warehouse.schema import ID_COLUMNS, LOADED_AT

    tables = {
        "tasks": "tasks",
        "workflows": "workflows",
        "objects": "data_objects",
        "object_history": "data_objects",
        "agents": "agents",
    }
    if name not in tables:
        raise ValueError(
            f"unknown collection {name!r}: use tasks, workflows, objects, object_history or agents"
        )
    table = tables[name]
    cols = dict(zip(ddl.columns(table), ddl.column_kinds(table), strict=True))
    cols.pop(LOADED_AT, None)  # the warehouse's, not a record field (``query.loads`` reads it)
    order = {"tasks": "started_at", "workflows": "started_at", "agents": "registered_at"}.get(name)
    ids = frozenset(ID_COLUMNS.get(table, ()))
    return Collection(name, table, ddl.key_columns(table), cols, name == "tasks", order, ids)


# --- resolved paths ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnPath:
    column: str
    kind: str


@dataclass(frozen=True)
class ValuesPath:
    direction: str  # used | generated
    key_path: str


@dataclass(frozen=True)
class JsonPath:
    column: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class MissingPath:
    path: str


Path = ColumnPath | ValuesPath | JsonPath | MissingPath


def split_path(path: str) -> list[str]:
    if not isinstance(path, str):
        raise ValueError(f"a field name must be a string, got {type(path).__name__}: {path!r}")
    if path == "":
        raise ValueError("a field name must not be empty")
    # keys holding NUL are stored escaped (warehouse.escape): look them up the same way
    return [escape_text(k) for k in path.split(".")]


def resolve(coll: Collection, path: str) -> Path:
    """Where the field ``path`` lives in ``coll``'s table."""
    head, *rest = split_path(path)
    kind = coll.columns.get(head)
    if kind is None or head == "extra":
        return JsonPath("extra", (head, *rest))
    if not rest:
        return JsonPath(head, ()) if kind == JSON else ColumnPath(head, kind)
    if kind != JSON:
        return MissingPath(path)  # below a scalar column (``status.x``): nothing is there
    if coll.values_table and head in ("used", "generated") and not any(k.isdigit() for k in rest):
        return ValuesPath(head, ".".join(rest))
    return JsonPath(head, tuple(rest))


# --- engine SQL -------------------------------------------------------------------------------


class Dialect:
    """SQL that differs between PostgreSQL and DuckDB; ``x`` is a JSON expression (a Frag)."""

    name = ""
    placeholder = "?"

    def json_get(self, col: Frag, keys: tuple[str, ...]) -> Frag:
        """The JSON value at ``keys`` below the JSON column ``col`` (NULL when missing)."""
        raise NotImplementedError

    def j_type_is(self, x: Frag, kind: str) -> Frag:
        """``x`` holds a JSON value of ``kind``: number, string, bool, null, object, array."""
        raise NotImplementedError

    def j_num(self, x: Frag) -> Frag:
        """``x`` as a double when it is a JSON number, else NULL."""
        raise NotImplementedError

    def j_str(self, x: Frag) -> Frag:
        raise NotImplementedError

    def j_bool(self, x: Frag) -> Frag:
        raise NotImplementedError

    def j_text(self, x: Frag) -> Frag:
        """The JSON text of ``x`` (for grouping, and to read dicts and lists back)."""
        raise NotImplementedError

    def j_equals(self, x: Frag, doc_json: str) -> Frag:
        """``x`` equals the JSON document ``doc_json`` (bound)."""
        raise NotImplementedError

    def j_any_element(self, x: Frag, cond) -> Frag:
        """Some element of the JSON array ``x`` satisfies ``cond(el)`` (``el`` a Frag)."""
        raise NotImplementedError

    def regex(self, expr: Frag, pattern: str, flags: str) -> Frag:
        raise NotImplementedError

    def in_array(self, expr: Frag, values: list, sql_type: str) -> Frag:
        """``expr`` is one of ``values``, bound as one array of ``sql_type`` (TEXT, BIGINT or
        DOUBLE PRECISION) whatever its length: PostgreSQL takes at most 65,535 parameters.
        Never NULL."""
        raise NotImplementedError

    def epoch_us(self, ts: Frag) -> Frag:
        """Microseconds since the epoch of a timestamp, exact, as BIGINT."""
        raise NotImplementedError

    def load_horizon(self) -> Frag | None:
        """A query for the load time before which every loader transaction has committed
        (``query.loads``), or None where one writer at a time commits in load order."""
        return None

    def duration_us(self, start: Frag, end: Frag) -> Frag:
        """``end - start`` in microseconds (NULL unless both are known)."""
        return sql("({} - {})", self.epoch_us(end), self.epoch_us(start))

    def epoch(self, ts: Frag) -> Frag:
        """Seconds since the epoch of a timestamp, as a double (exact to the microsecond)."""
        return sql("(CAST({} AS DOUBLE PRECISION) / 1000000)", self.epoch_us(ts))

    def j_rank(self, x: Frag) -> Frag:
        """Mongo's order of types: missing and null, numbers, strings, objects, arrays, bools."""
        return sql(
            "(CASE WHEN {} IS NULL OR {} THEN 0 WHEN {} THEN 1 WHEN {} THEN 2 WHEN {} THEN 3"
            " WHEN {} THEN 4 ELSE 5 END)",
            x,
            self.j_type_is(x, "null"),
            self.j_type_is(x, "number"),
            self.j_type_is(x, "string"),
            self.j_type_is(x, "object"),
            self.j_type_is(x, "array"),
        )


class PgDialect(Dialect):
    name = "postgresql"
    placeholder = "%s"
    _TYPES = {
        "number": "number",
        "string": "string",
        "bool": "boolean",
        "null": "null",
        "object": "object",
        "array": "array",
    }
    _SCALAR = Raw("CAST(ARRAY[] AS TEXT[])")  # the path of the value itself: ``x #>> '{}'``

    def json_get(self, col, keys):
        if not keys:
            return col
        return sql("({} #> CAST({} AS TEXT[]))", col, list(keys))

    def j_type_is(self, x, kind):
        return sql("(jsonb_typeof({}) = {})", x, Raw(f"'{self._TYPES[kind]}'"))

    def j_num(self, x):
        return sql(
            "(CASE WHEN jsonb_typeof({}) = 'number' THEN CAST({} #>> {} AS DOUBLE PRECISION) END)",
            x,
            x,
            self._SCALAR,
        )

    def j_str(self, x):
        return sql("(CASE WHEN jsonb_typeof({}) = 'string' THEN {} #>> {} END)", x, x, self._SCALAR)

    def j_bool(self, x):
        return sql(
            "(CASE WHEN jsonb_typeof({}) = 'boolean' THEN CAST({} #>> {} AS BOOLEAN) END)",
            x,
            x,
            self._SCALAR,
        )

    def j_text(self, x):
        return sql("CAST({} AS TEXT)", x)

    def j_equals(self, x, doc_json):
        return sql("({} = CAST({} AS JSONB))", x, doc_json)

    def j_any_element(self, x, cond):
        return sql(
            "EXISTS (SELECT 1 FROM jsonb_array_elements("
            "CASE WHEN jsonb_typeof({}) = 'array' THEN {} END) AS el_(el) WHERE {})",
            x,
            x,
            cond(Frag("el_.el")),
        )

    def regex(self, expr, pattern, flags):
        op = Raw("~*" if "i" in flags else "~")
        return sql("({} {} CAST({} AS TEXT))", expr, op, pattern)

    def in_array(self, expr, values, sql_type):
        return sql(f"COALESCE({{}} = ANY(CAST({{}} AS {sql_type}[])), FALSE)", expr, list(values))

    def epoch_us(self, ts):
        # date_part is a double: rounded to microseconds it is exact for dates up to 2106,
        # and much faster than EXTRACT's NUMERIC
        return sql("CAST(ROUND(date_part('epoch', {}) * 1000000) AS BIGINT)", ts)

    def load_horizon(self):
        # loaders write beside each other, each stamping its rows with the time of its first
        # write (never before its start): what an open loader transaction may still commit is
        # stamped at or after its start
        return sql(
            "SELECT least(min(xact_start), clock_timestamp()) AT TIME ZONE 'UTC'"
            " FROM pg_stat_activity WHERE application_name = {} AND xact_start IS NOT NULL"
            " AND datname = current_database() AND pid <> pg_backend_pid()",
            LOADER_APPLICATION,
        )


class DuckDialect(Dialect):
    name = "duckdb"
    placeholder = "?"
    _TYPES = {
        "number": "IN ('BIGINT', 'UBIGINT', 'HUGEINT', 'DOUBLE')",
        "string": "= 'VARCHAR'",
        "bool": "= 'BOOLEAN'",
        "null": "= 'NULL'",
        "object": "= 'OBJECT'",
        "array": "= 'ARRAY'",
    }

    def json_get(self, col, keys):
        if not keys:
            return col
        pointer = "".join("/" + k.replace("~", "~0").replace("/", "~1") for k in keys)
        return sql("json_extract({}, CAST({} AS VARCHAR))", col, pointer)

    def j_type_is(self, x, kind):
        return sql("(json_type({}) {})", x, Raw(self._TYPES[kind]))

    # CASE rather than AND: DuckDB does not short-circuit, and a failed cast is an error
    def j_num(self, x):
        return sql("(CASE WHEN {} THEN CAST({} AS DOUBLE) END)", self.j_type_is(x, "number"), x)

    def j_str(self, x):
        return sql(
            "(CASE WHEN {} THEN json_extract_string({}, '$') END)", self.j_type_is(x, "string"), x
        )

    def j_bool(self, x):
        return sql("(CASE WHEN {} THEN CAST({} AS BOOLEAN) END)", self.j_type_is(x, "bool"), x)

    def j_text(self, x):
        return sql("CAST({} AS VARCHAR)", x)

    def j_equals(self, x, doc_json):
        return sql("(json({}) = json(CAST({} AS VARCHAR)))", x, doc_json)

    def j_any_element(self, x, cond):
        return sql(
            "EXISTS (SELECT 1 FROM (SELECT unnest(CAST(CASE WHEN {} THEN {} END AS JSON[]))"
            " AS el) AS el_ WHERE {})",
            self.j_type_is(x, "array"),
            x,
            cond(Frag("el_.el")),
        )

    def regex(self, expr, pattern, flags):
        return sql(
            "regexp_matches({}, CAST({} AS VARCHAR), {})",
            expr,
            pattern,
            Raw("'i'" if "i" in flags else "''"),
        )

    def in_array(self, expr, values, sql_type):
        return sql(
            f"COALESCE(list_contains(CAST({{}} AS {sql_type}[]), {{}}), FALSE)",
            list(values),
            expr,
        )

    def epoch_us(self, ts):
        return sql("epoch_us({})", ts)


PG = PgDialect()
DUCK = DuckDialect()
