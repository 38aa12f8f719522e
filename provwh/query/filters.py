"""Mongo-style filters and sorts -> SQL with bound parameters.

Grammar (see ``docs/query-guide.md``): a filter is a dict; a key is ``$and`` / ``$or`` / ``$nor``
(a non-empty list of filters) or a dotted field path; a field's condition is a value
(equality), a compiled regex, or a dict of operators ``$eq $ne $gt $gte $lt $lte $in $nin
$exists $regex $options $not``. Anything else raises ``ValueError`` naming what is wrong.

Semantics kept from MongoDB: numbers compare with numbers (``1 == 1.0``, never ``True``),
strings with strings (byte order), ``{"f": None}`` matches null or missing, equality on an
array field also matches an element (``{"tags": "a"}``), ``$exists: True`` matches nulls.
Differences, on purpose: a condition on a missing field matches nothing, ``$ne`` / ``$nin`` /
``$not`` included (``{"$or": [{"f": {"$exists": False}}, {"f": {"$ne": v}}]}`` is MongoDB's
``$ne``); values of ``used`` / ``generated`` of tasks compare whole (``{"used.xs": 3}`` does
not match ``[1, 2, 3]``); ordering operators on arrays do not look at elements.

Every predicate compiled here is two-valued (TRUE or FALSE, never NULL), so ``NOT`` and
``$nor`` mean what they say.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from provwh.core.serialize import encode_float
from provwh.query.frag import FALSE, TRUE, Frag, Raw, all_of, any_of, join, negate, sql
from provwh.query.paths import (
    BOOL,
    BYTES,
    COLLATE,
    FLOAT,
    INT,
    JSON,
    TEXT,
    TIME,
    Collection,
    ColumnPath,
    Dialect,
    JsonPath,
    MissingPath,
    Path,
    ValuesPath,
    resolve,
)
from provwh.warehouse.escape import (
    DIGEST_PREFIX,
    NUL_MARKER,
    escape_nul,
    escape_text,
    needs_escape,
    stored_id,
)
from provwh.warehouse.times import micros_to_datetime, to_micros
from provwh.warehouse.values import INDEXED_KEY_PATH_CHARS, KEY_PATH_INDEXED, value_hash

LOGICAL = ("$and", "$or", "$nor")
FIELD_OPERATORS = (
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$regex",
    "$options",
    "$not",
)
_CMP = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
# $in values listed one by one up to this many; more are bound as one array (PostgreSQL takes
# at most 65,535 parameters a statement)
MAX_LISTED = 100
_V_HASH = Frag("v_.value_hash")
_REGEX_FLAGS = {"i": "i"}
_VTYPE_RANK = (
    "CASE v_.value_type WHEN 'null' THEN 0 WHEN 'int' THEN 1 WHEN 'float' THEN 1"
    " WHEN 'str' THEN 2 WHEN 'dict' THEN 3 WHEN 'list' THEN 4 WHEN 'bytes' THEN 4"
    " WHEN 'bool' THEN 5 ELSE 6 END"
)

# a sort key's value from its task_values rows: type rank, number, text, boolean (sort_joins)
_SORT_AGGS = (
    f"min({_VTYPE_RANK}) AS r, min(v_.value_num) AS n, min(v_.value_text) AS s,"
    " min(CASE WHEN v_.value_bool THEN 1 ELSE 0 END) AS b"
)


def _grouped_sort_values(direction: str, key_path: str, scope: str | None = None) -> Frag:
    """A sort key's value per task (``_SORT_AGGS``), its rows grouped by task; only the tasks
    ``scope`` selects (SQL text) when given."""
    within = f" AND v_.task_id IN ({scope})" if scope is not None else ""
    return sql(
        f"SELECT v_.task_id, {_SORT_AGGS} FROM task_values v_"
        f" WHERE v_.direction = {{}} AND v_.key_path = {{}}{within} GROUP BY v_.task_id",
        direction,
        key_path,
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _kind_of(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if _is_number(v):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, datetime):
        return "datetime"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(v, Mapping):
        return "object"
    if isinstance(v, (list, tuple)):
        return "array"
    raise ValueError(f"cannot compare with a value of type {type(v).__name__}: {v!r}")


def _epoch_of(dt: datetime) -> float:
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return (dt - datetime(1970, 1, 1)).total_seconds()


def _timestamp(v: Any, op: str) -> datetime:
    """A filter value for a time column: epoch seconds, a datetime or an ISO string."""
    if isinstance(v, datetime):
        if v.tzinfo is not None:
            v = v.astimezone(UTC).replace(tzinfo=None)
        return v
    us = to_micros(float(v) if _is_number(v) else v)
    if us is None:
        raise ValueError(f"{op}: {v!r} is not a time (epoch seconds, datetime or ISO string)")
    return micros_to_datetime(us)


def _json_text(v: Any) -> str:
    """A value as JSON text the way the loader stores it (NUL escaped, tuples as lists)."""
    return orjson.dumps(escape_nul(_plain(v))).decode()


def _plain(v: Any) -> Any:
    """A filter value as stored: NaN and infinities as their ``$float`` markers."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, datetime):
        return _epoch_of(v)
    if isinstance(v, float) and v - v != 0.0:
        return encode_float(v)
    return v


def _text(v: str) -> str:
    return escape_text(v)


def _hash(v: Any) -> int:
    """``value_hash`` of a filter value as the loader stores it (NUL escaped, markers)."""
    return value_hash(escape_nul(_plain(v)))


def _coalesce(frag: Frag) -> Frag:
    return sql("COALESCE({}, FALSE)", frag)


class FilterCompiler:
    """Compiles filters and sorts for one collection and engine; the table alias is ``t``."""

    def __init__(
        self, coll: Collection, dialect: Dialect, alias: str = "t", probe_values: bool = False
    ) -> None:
        self.coll = coll
        self.d = dialect
        self.alias = alias
        # used / generated conditions tested task by task (``_values``)
        self.probe_values = probe_values
        # used / generated values the sort reads: (alias, direction, key path), one join each
        self._sort_values: list[tuple[str, str, str]] = []

    # --- structure -------------------------------------------------------------------------
    def where(self, flt: Any) -> Frag:
        """The WHERE condition of a filter (``None`` or ``{}``: every record)."""
        if flt is None:
            return TRUE
        if not isinstance(flt, Mapping):
            raise ValueError(f"a filter must be a dict, got {type(flt).__name__}: {flt!r}")
        return all_of([self._clause(key, cond) for key, cond in flt.items()])

    def _clause(self, key: Any, cond: Any) -> Frag:
        if not isinstance(key, str):
            raise ValueError(f"a filter key must be a string, got {type(key).__name__}: {key!r}")
        if key.startswith("$"):
            if key in LOGICAL:
                if not isinstance(cond, (list, tuple)) or not cond:
                    raise ValueError(f"{key} needs a non-empty list of filters, got {cond!r}")
                subs = [self.where(c) if isinstance(c, Mapping) else _bad_sub(key, c) for c in cond]
                if key == "$and":
                    return all_of(subs)
                if key == "$or":
                    return any_of(subs)
                return negate(any_of(subs))
            if key == "$comment":
                return TRUE
            raise ValueError(
                f"unknown top-level operator {key!r}; supported: {', '.join(LOGICAL)}"
                " (field operators go inside a field: {'field': {'$gt': 1}})"
            )
        return self.field(key, cond)

    def field(self, path: str, cond: Any) -> Frag:
        p = resolve(self.coll, path)
        if isinstance(cond, re.Pattern):
            return self._regex(p, cond.pattern, _pattern_flags(cond))
        if isinstance(cond, Mapping) and cond:
            dollar = [k for k in cond if isinstance(k, str) and k.startswith("$")]
            if dollar:
                if len(dollar) != len(cond):
                    raise ValueError(
                        f"{path!r}: a condition mixes operators and field names: {cond!r}"
                    )
                return self._operators(path, p, cond)
        return self._eq(p, cond)

    def _operators(self, path: str, p: Path, ops: Mapping) -> Frag:
        for op in ops:
            if op not in FIELD_OPERATORS:
                raise ValueError(
                    f"unknown operator {op!r} on {path!r}; supported: {', '.join(FIELD_OPERATORS)}"
                )
        if "$options" in ops and "$regex" not in ops:
            raise ValueError(f"{path!r}: $options needs $regex")
        parts = []
        for op, v in ops.items():
            if op == "$eq":
                parts.append(self._eq(p, v))
            elif op == "$ne":
                parts.append(all_of([self._present(p), negate(self._eq(p, v))]))
            elif op in _CMP:
                parts.append(self._order_cmp(p, op, v))
            elif op == "$in":
                parts.append(self._in(p, _list_of(op, v)))
            elif op == "$nin":
                parts.append(all_of([self._present(p), negate(self._in(p, _list_of(op, v)))]))
            elif op == "$exists":
                if not isinstance(v, (bool, int)):
                    raise ValueError(f"$exists needs true or false, got {v!r}")
                parts.append(self._present(p) if v else negate(self._present(p)))
            elif op == "$regex":
                parts.append(self._regex_op(p, v, ops.get("$options", "")))
            elif op == "$not":
                parts.append(all_of([self._present(p), negate(self._not_operand(path, p, v))]))
        return all_of(parts)

    def _not_operand(self, path: str, p: Path, v: Any) -> Frag:
        if isinstance(v, re.Pattern):
            return self._regex(p, v.pattern, _pattern_flags(v))
        if (
            isinstance(v, Mapping)
            and v
            and all(isinstance(k, str) and k.startswith("$") for k in v)
        ):
            return self._operators(path, p, v)
        raise ValueError(f"$not needs an operator expression or a regex, got {v!r}")

    # --- paths -----------------------------------------------------------------------------
    def _col(self, name: str) -> Frag:
        return Frag(f'{self.alias}."{name}"')

    def _values(self, p: ValuesPath, cond: str, *params: Any) -> Frag:
        """Tasks with a key/value row at ``p`` satisfying ``cond`` (over alias ``v_``).

        With ``probe_values``, each task's rows are looked up by its id, in a subquery the
        planner keeps as it is (``OFFSET 0``): for a few tasks (one workflow of 10,000 among
        1,000,000) that beats finding every task of the warehouse that matches first, which
        PostgreSQL picks when it misjudges how many do (a used.x range is estimated over
        every key's numbers)."""
        # PostgreSQL's (key_path, value_num) index holds the paths up to this long: say so
        short = len(p.key_path) <= INDEXED_KEY_PATH_CHARS
        indexed = " AND " + KEY_PATH_INDEXED.replace("key_path", "v_.key_path") if short else ""
        if self.probe_values:
            return sql(
                "EXISTS (SELECT 1 FROM task_values v_ WHERE v_.task_id = {}"
                " AND v_.direction = {} AND v_.key_path = {}"
                + indexed
                + " AND "
                + cond
                + " OFFSET 0)",
                self._col("task_id"),
                p.direction,
                p.key_path,
                *params,
            )
        return sql(
            "{} IN (SELECT v_.task_id FROM task_values v_ WHERE v_.direction = {}"
            " AND v_.key_path = {}" + indexed + " AND " + cond + ")",
            self._col("task_id"),
            p.direction,
            p.key_path,
            *params,
        )

    def text_col(self, column: str) -> Frag:
        """A text column as its values compare in order: in an id column, a digest key gives
        way to the id it stands for, as escaped (from the row's ``extra``: warehouse.escape),
        so that ranges, regexes and sorts see the whole id. Equality needs none of it: the id
        looked up is turned into its digest key (``_stored_text``), and the index serves."""
        col = self._col(column)
        if column not in self.coll.ids:
            return col
        extra = self._col("extra")
        marker = self.d.j_str(self.d.json_get(extra, (column, NUL_MARKER)))
        plain = self.d.j_str(self.d.json_get(extra, (column,)))
        return sql(
            "(CASE WHEN starts_with({}, CAST({} AS TEXT)) THEN COALESCE({}, {}) ELSE {} END)",
            col,
            DIGEST_PREFIX,
            marker,
            plain,
            col,
        )

    def _stored_text(self, column: str, v: str) -> str:
        """A string as the text column holds it: escaped, and a long id as its digest key."""
        return stored_id(v) if column in self.coll.ids else _text(v)

    def _json(self, p: JsonPath) -> Frag:
        return self.d.json_get(self._col(p.column), p.keys)

    def _present(self, p: Path) -> Frag:
        if isinstance(p, ColumnPath):
            return sql("({} IS NOT NULL)", self._col(p.column))
        if isinstance(p, JsonPath):
            return sql("({} IS NOT NULL)", self._json(p))
        if isinstance(p, ValuesPath):
            return sql(
                "{} IN (SELECT v_.task_id FROM task_values v_ WHERE v_.direction = {}"
                " AND (v_.key_path = {} OR starts_with(v_.key_path, {})))",
                self._col("task_id"),
                p.direction,
                p.key_path,
                p.key_path + ".",
            )
        return FALSE

    def _is_null(self, p: Path) -> Frag:
        if isinstance(p, ColumnPath):
            return sql("({} IS NULL)", self._col(p.column))
        if isinstance(p, JsonPath):
            return _coalesce(self.d.j_type_is(self._json(p), "null"))
        if isinstance(p, ValuesPath):
            return self._values(p, "v_.value_type = 'null'")
        return FALSE

    # --- equality --------------------------------------------------------------------------
    def _eq(self, p: Path, v: Any) -> Frag:
        kind = _kind_of(v)
        if kind == "null":
            return any_of([negate(self._present(p)), self._is_null(p)])
        if isinstance(p, MissingPath):
            return FALSE
        if isinstance(p, ColumnPath):
            return self._column_cmp(p, "=", v, kind)
        if isinstance(p, ValuesPath) and kind == "object" and v:
            p = _as_json(p)  # a non-empty dict is not one key/value row: compare the document
        if isinstance(p, ValuesPath):
            if kind == "datetime":
                v = _epoch_of(v)
            return self._values(p, "v_.value_hash = CAST({} AS BIGINT)", _hash(v))
        x = self._json(p)
        direct = self._json_eq(x, v, kind)
        contains = self.d.j_any_element(x, lambda el: self._json_eq(el, v, kind))
        return _coalesce(any_of([direct, contains]))

    def _json_eq(self, x: Frag, v: Any, kind: str) -> Frag:
        if kind == "number" and v - v != 0:  # NaN or an infinity: its marker document
            return self.d.j_equals(x, _json_text(float(v)))
        if kind == "number":
            return sql("({} = CAST({} AS DOUBLE PRECISION))", self.d.j_num(x), float(v))
        if kind == "string" and not needs_escape(v):
            return sql("({} = CAST({} AS TEXT))", self.d.j_str(x), v)
        if kind == "bool":
            return sql("({} = CAST({} AS BOOLEAN))", self.d.j_bool(x), v)
        if kind == "datetime":
            return self._json_eq(x, _epoch_of(v), "number")
        if kind == "bytes":
            return self.d.j_equals(x, _json_text({"$binary": _b64(v)}))
        return self.d.j_equals(x, _json_text(v))

    def _column_cmp(self, p: ColumnPath, op: str, v: Any, kind: str) -> Frag:
        col = self._col(p.column)
        if p.kind == JSON:
            raise AssertionError("JSON columns resolve to JsonPath")
        if p.kind == TEXT:
            if kind != "string":
                return FALSE
            if op == "=":
                return sql("({} = CAST({} AS TEXT))", col, self._stored_text(p.column, v))
            return sql(
                "({} {} CAST({} AS TEXT){})", self.text_col(p.column), Raw(op), _text(v),
                Raw(COLLATE),
            )  # fmt: skip
        if p.kind == TIME:
            if kind not in ("number", "datetime", "string"):
                return FALSE
            return sql("({} {} CAST({} AS TIMESTAMP))", col, Raw(op), _timestamp(v, op))
        if p.kind in (INT, FLOAT):
            if kind != "number":
                return FALSE
            return sql("({} {} CAST({} AS DOUBLE PRECISION))", col, Raw(op), float(v))
        if p.kind == BOOL:
            return sql("({} = {})", col, v) if kind == "bool" and op == "=" else FALSE
        if p.kind == BYTES:
            return sql("({} = {})", col, bytes(v)) if kind == "bytes" and op == "=" else FALSE
        return FALSE

    def _in(self, p: Path, values: list) -> Frag:
        plain, patterns = [], []
        for v in values:
            (patterns if isinstance(v, re.Pattern) else plain).append(v)
        parts = [self._regex(p, r.pattern, _pattern_flags(r)) for r in patterns]
        if isinstance(p, ValuesPath) and plain:
            docs = [v for v in plain if isinstance(v, Mapping) and v]  # compared as documents
            parts += [self._eq(p, v) for v in docs]
            hashes = [
                _hash(_epoch_of(v) if isinstance(v, datetime) else v)
                for v in plain
                if v is not None and not (isinstance(v, Mapping) and v)
            ]
            if len(hashes) > MAX_LISTED:
                parts.append(self._values(p, "{}", self.d.in_array(_V_HASH, hashes, "BIGINT")))
            elif hashes:
                slots = ", ".join("CAST({} AS BIGINT)" for _ in hashes)
                parts.append(self._values(p, f"v_.value_hash IN ({slots})", *hashes))
            if any(v is None for v in plain):
                parts.append(self._eq(p, None))
        elif isinstance(p, ColumnPath) and p.kind == TEXT and plain:
            texts = [self._stored_text(p.column, v) for v in plain if isinstance(v, str)]
            if len(texts) > MAX_LISTED:
                parts.append(self.d.in_array(self._col(p.column), texts, "TEXT"))
            elif texts:
                slots = join(", ", [sql("CAST({} AS TEXT)", t) for t in texts])
                parts.append(sql("({} IN ({}))", self._col(p.column), slots))
            if any(v is None for v in plain):
                parts.append(self._eq(p, None))
        elif len(plain) > MAX_LISTED and isinstance(p, (ColumnPath, JsonPath)):
            parts += self._in_arrays(p, plain)
        else:
            parts += [self._eq(p, v) for v in plain]
        return any_of(parts)

    def _in_arrays(self, p: ColumnPath | JsonPath, values: list) -> list[Frag]:
        """Many ``$in`` values: numbers (and strings) as one bound array each, the rest one by
        one."""
        numbers, strings, rest = [], [], []
        for v in values:
            kind = _kind_of(v)
            if kind == "number" and v - v == 0:  # NaN and the infinities compare as markers
                numbers.append(float(v))
            elif kind == "string" and not needs_escape(v):
                strings.append(v)
            else:
                rest.append(v)
        parts = [self._eq(p, v) for v in rest]
        if isinstance(p, ColumnPath):
            if numbers and p.kind in (INT, FLOAT):
                col = sql("CAST({} AS DOUBLE PRECISION)", self._col(p.column))
                parts.append(self.d.in_array(col, numbers, "DOUBLE PRECISION"))
            return parts
        x = self._json(p)
        for found, kind, items in (
            (self.d.j_num, "DOUBLE PRECISION", numbers),
            (self.d.j_str, "TEXT", strings),
        ):
            if items:
                parts.append(self.d.in_array(found(x), items, kind))
                parts.append(
                    _coalesce(
                        self.d.j_any_element(
                            x, lambda el, f=found, k=kind, i=items: self.d.in_array(f(el), i, k)
                        )
                    )
                )
        return parts

    # --- ordering comparisons ----------------------------------------------------------------
    def _order_cmp(self, p: Path, op: str, v: Any) -> Frag:
        kind = _kind_of(v)
        if kind not in ("number", "string", "datetime"):
            raise ValueError(f"{op} compares with a number, a string or a datetime; got {v!r}")
        sym = _CMP[op]
        if isinstance(p, MissingPath):
            return FALSE
        if isinstance(p, ColumnPath):
            return self._column_cmp(p, sym, v, kind)
        if kind == "datetime":
            v, kind = _epoch_of(v), "number"
        if isinstance(p, ValuesPath):
            if kind == "number":
                return self._values(
                    p, f"v_.value_num {sym} CAST({{}} AS DOUBLE PRECISION)", float(v)
                )
            return self._values(
                p,
                f"v_.value_type = 'str' AND v_.value_text {sym} CAST({{}} AS TEXT){COLLATE}",
                _text(v),
            )
        x = self._json(p)
        if kind == "number":
            return _coalesce(
                sql("({} {} CAST({} AS DOUBLE PRECISION))", self.d.j_num(x), Raw(sym), float(v))
            )
        return _coalesce(
            sql("({} {} CAST({} AS TEXT){})", self.d.j_str(x), Raw(sym), _text(v), Raw(COLLATE))
        )

    # --- regular expressions -----------------------------------------------------------------
    def _regex_op(self, p: Path, v: Any, options: Any) -> Frag:
        if isinstance(v, re.Pattern):
            flags = _pattern_flags(v)
            v = v.pattern
        elif isinstance(v, str):
            flags = ""
        else:
            raise ValueError(f"$regex needs a string or a compiled pattern, got {v!r}")
        if not isinstance(options, str):
            raise ValueError(f"$options needs a string of flags, got {options!r}")
        for flag in options:
            if flag not in _REGEX_FLAGS:
                raise ValueError(f"$options: unsupported regex flag {flag!r} (supported: i)")
        return self._regex(p, v, flags + options)

    def _regex(self, p: Path, pattern: str, flags: str) -> Frag:
        pattern = _text(pattern)
        if isinstance(p, MissingPath):
            return FALSE
        if isinstance(p, ColumnPath):
            if p.kind != TEXT:
                return FALSE
            return _coalesce(self.d.regex(self.text_col(p.column), pattern, flags))
        if isinstance(p, ValuesPath):
            cond = self.d.regex(Frag("v_.value_text"), pattern, flags)
            return self._values(p, "v_.value_type = 'str' AND {}", cond)
        x = self._json(p)
        direct = self.d.regex(self.d.j_str(x), pattern, flags)
        contains = self.d.j_any_element(
            x, lambda el: _coalesce(self.d.regex(self.d.j_str(el), pattern, flags))
        )
        return _coalesce(any_of([direct, contains]))

    # --- sorting -----------------------------------------------------------------------------
    def sort_keys(self, path: str, descending: bool) -> list[Frag]:
        """ORDER BY terms for one field, in MongoDB's order (missing and null first)."""
        p = resolve(self.coll, path)
        nulls = Raw(" DESC NULLS LAST" if descending else " ASC NULLS FIRST")
        if isinstance(p, MissingPath):
            return []
        if isinstance(p, ColumnPath):
            if p.kind == TEXT:
                return [sql("{}{}{}", self.text_col(p.column), Raw(COLLATE), nulls)]
            return [sql("{}{}", self._col(p.column), nulls)]
        if isinstance(p, ValuesPath):
            a = f"s{len(self._sort_values)}_"
            self._sort_values.append((a, p.direction, p.key_path))
            terms = [
                Frag(f"COALESCE({a}.r, 0)"),
                Frag(f"{a}.n"),
                Frag(f"{a}.s{COLLATE}"),
                Frag(f"{a}.b"),
            ]
            return [sql("{}{}", t, nulls) for t in terms]
        x = self._json(p)
        terms = [
            self.d.j_rank(x),
            self.d.j_num(x),
            sql("{}{}", self.d.j_str(x), Raw(COLLATE)),
            sql("{}{}", self.d.j_text(x), Raw(COLLATE)),
        ]
        return [sql("{}{}", t, nulls) for t in terms]

    def sort_joins(self, lateral: bool | None = None) -> Frag:
        """The joins the ORDER BY terms of ``sort_keys`` read (after ``FROM <table> t``): per
        used / generated key sorted on, the minimum of each typed column of its rows (a task
        may have several rows on one key path), as MongoDB's order across types needs.

        ``lateral``: per task, one index probe (PostgreSQL's default: it never reads the key's
        rows of other tasks; 50,000 tasks 0.65 s where the correlated subqueries, one per
        column, took 1.1 s); else the key's rows grouped by task once and joined (DuckDB's
        default: 81 ms where the subqueries took 250, and a lateral join 130)."""
        if lateral is None:
            lateral = self.d.name == "postgresql"
        joins = []
        for a, direction, key_path in self._sort_values:
            if lateral:
                joins.append(
                    sql(
                        f"LEFT JOIN LATERAL (SELECT {_SORT_AGGS} FROM task_values v_"
                        f" WHERE v_.task_id = {self.alias}.task_id AND v_.direction = {{}}"
                        f" AND v_.key_path = {{}}) {a} ON TRUE",
                        direction,
                        key_path,
                    )
                )
            else:
                grouped = _grouped_sort_values(direction, key_path)
                joins.append(sql(f"LEFT JOIN ({{}}) {a} ON {a}.task_id = {self.alias}.task_id",
                                 grouped))  # fmt: skip
        return join(" ", joins) if joins else Frag("")

    def sort_ctes(self, scope: str) -> tuple[Frag, Frag] | None:
        """The grouped ``sort_joins`` as common table expressions restricted to the task ids
        ``scope`` selects (SQL text), and the joins reading them; None without a used /
        generated sort key. Grouping the key's rows of every task costs as the warehouse
        grows (DuckDB, 1,000,000 tasks: 140 ms for the 5,000 of one workflow's query)."""
        if not self._sort_values:
            return None
        ctes, joins = [], []
        for a, direction, key_path in self._sort_values:
            grouped = _grouped_sort_values(direction, key_path, scope)
            ctes.append(sql(f"{a} AS MATERIALIZED ({{}})", grouped))
            joins.append(Frag(f"LEFT JOIN {a} ON {a}.task_id = {self.alias}.task_id"))
        return join(", ", ctes), join(" ", joins)

    def order_by(self, sort: Any, default: bool = True) -> Frag:
        """ORDER BY for ``[(field, 1 | -1), ...]``, then the table's default order."""
        terms: list[Frag] = []
        for field, direction in _sort_spec(sort):
            terms += self.sort_keys(field, direction < 0)
        if default:
            if self.coll.time_order:
                terms.append(sql("{} ASC NULLS LAST", self._col(self.coll.time_order)))
            for key in self.coll.keys:
                kind = self.coll.columns[key]
                terms.append(sql("{}{}", self._col(key), Raw(COLLATE if kind == TEXT else "")))
        return join(", ", terms)


def _sort_spec(sort: Any) -> list[tuple[str, int]]:
    """``[(field, ±1)]``; also a dict, or one ``(field, ±1)`` pair, as pymongo accepts."""
    if sort is None:
        return []
    if isinstance(sort, Mapping):
        sort = list(sort.items())
    elif isinstance(sort, tuple) and len(sort) == 2 and isinstance(sort[0], str):
        sort = [sort]
    if not isinstance(sort, (list, tuple)):
        raise ValueError(f"sort must be a list of (field, 1 | -1) pairs, got {sort!r}")
    out = []
    for item in sort:
        if isinstance(item, str):
            item = (item, 1)
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError(f"sort must be a list of (field, 1 | -1) pairs, got {item!r}")
        field, direction = item
        if direction in ("asc", "ASC"):
            direction = 1
        elif direction in ("desc", "DESC"):
            direction = -1
        if direction not in (1, -1) or isinstance(direction, bool):
            raise ValueError(f"sort direction of {field!r} must be 1 or -1, got {direction!r}")
        if not isinstance(field, str) or not field:
            raise ValueError(f"sort field must be a non-empty string, got {field!r}")
        out.append((field, int(direction)))
    return out


def _as_json(p: ValuesPath) -> JsonPath:
    return JsonPath(p.direction, tuple(p.key_path.split(".")))


def _bad_sub(key: str, cond: Any) -> Frag:
    raise ValueError(f"{key} needs a list of filter dicts, got {cond!r}")


def _list_of(op: str, v: Any) -> list:
    if isinstance(v, (list, tuple, set, frozenset)):
        return list(v)
    raise ValueError(f"{op} needs a list of values, got {v!r}")


def _pattern_flags(p: re.Pattern) -> str:
    if p.flags & ~(re.IGNORECASE | re.UNICODE):
        raise ValueError("compiled patterns may use re.IGNORECASE only")
    return "i" if p.flags & re.IGNORECASE else ""


def _b64(v: Any) -> dict:
    import base64

    return {"base64": base64.b64encode(bytes(v)).decode(), "subType": "00"}
