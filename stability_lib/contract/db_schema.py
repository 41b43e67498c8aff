"""Database schema snapshot (thin I/O through ``sqlalchemy.inspect``) and its pure diff.

``read_schema(url)`` reads tables, columns (declared type, nullability) and indexes
from any SQLAlchemy URL; a plain path is a SQLite file. ``diff_schemas(old, new)``
says which changes can break code written against the old schema: a dropped
table or column, a narrowed type, a column that became NOT NULL. Types are
compared as declared (SQLite does not enforce VARCHAR lengths, other databases do).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import TargetError
from ..core.models import Claim, EvidenceRef, Figure, Status
from .openapi_diff import Change, Level, Rule, count_levels

__all__ = [
    "DB_RULES",
    "Column",
    "Index",
    "Table",
    "Schema",
    "to_sqlalchemy_url",
    "redact_url",
    "read_schema",
    "diff_schemas",
    "db_schema_claims",
]

CONNECT_TIMEOUT_S = 10

DB_RULES: tuple[Rule, ...] = (
    Rule("db-table-removed", Level.ERR, "A table was dropped."),
    Rule("db-column-removed", Level.ERR, "A column was dropped."),
    Rule("db-column-type-narrowed", Level.ERR, "A column's type holds less than before (shorter, smaller)."),
    Rule("db-column-type-changed", Level.ERR, "A column's type changed to another kind (text to number...)."),
    Rule("db-column-became-not-null", Level.ERR, "A column became NOT NULL: inserts without it now fail."),
    Rule("db-index-removed", Level.WARN, "An index was dropped: queries may slow down."),
    Rule("db-index-became-unique", Level.WARN, "An index became UNIQUE: duplicate inserts now fail."),
    Rule("db-column-added-required", Level.ERR, "A NOT NULL column without a default was added: old inserts now fail."),
    Rule("db-unique-added", Level.WARN, "A UNIQUE index or constraint was added: duplicate inserts now fail."),
    Rule("db-table-added", Level.INFO, "A table was added."),
    Rule("db-column-added", Level.INFO, "A column was added."),
    Rule("db-column-type-widened", Level.INFO, "A column's type holds more than before."),
    Rule("db-column-became-nullable", Level.INFO, "A column became nullable."),
    Rule("db-index-added", Level.INFO, "An index was added."),
)
_LEVEL = {r.id: r.level for r in DB_RULES}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    has_default: bool = False


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...] = ()


@dataclass(frozen=True)
class Schema:
    tables: tuple[Table, ...]
    dialect: str = ""
    source: str = ""  # the URL with any password redacted
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)

    def serialize(self) -> dict[str, Any]:
        return {
            "dialect": self.dialect,
            "source": self.source,
            "tables": {
                t.name: {
                    "columns": {c.name: {"type": c.type, "nullable": c.nullable} for c in t.columns},
                    "indexes": {i.name: {"columns": list(i.columns), "unique": i.unique} for i in t.indexes},
                }
                for t in self.tables
            },
        }


# --------------------------------------------------------------------------- I/O


def to_sqlalchemy_url(value: str, base_dir: Path | None = None) -> str:
    """A URL as is; anything without ``://`` is a SQLite file path (relative to ``base_dir``)."""
    if "://" in value:
        return value
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return f"sqlite:///{path.resolve()}"


def redact_url(url: str) -> str:
    """The URL safe for evidence: no password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: keep only the scheme
        return url.split("://", 1)[0] + "://***"


def read_schema(url: str) -> Schema:
    """Tables, columns and indexes of the database at ``url`` (read only; the default schema)."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    safe = redact_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise TargetError(f"not a database URL: {safe}") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        # Connecting to a missing SQLite file would create an empty one and compare nothing.
        if database and database != ":memory:" and not database.startswith("file:") and not Path(database).is_file():
            raise TargetError(f"SQLite database file not found: {database}")
    # A server that does not answer must not hang the run (SQLite has no connection to wait for).
    connect_args = {} if parsed.get_backend_name() == "sqlite" else {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        engine = create_engine(parsed, connect_args=connect_args)
    except Exception as exc:
        raise TargetError(f"cannot open database {safe}: {exc}") from exc
    try:
        insp = inspect(engine)
        tables: list[Table] = []
        for table_name in sorted(insp.get_table_names()):
            columns = tuple(
                Column(
                    name=str(c["name"]),
                    type=_type_string(c["type"], engine.dialect),
                    nullable=bool(c.get("nullable", True)),
                    has_default=c.get("default") is not None or bool(c.get("autoincrement") is True),
                )
                for c in insp.get_columns(table_name)
            )
            # UNIQUE constraints are not indexes to every dialect (SQLite hides their automatic indexes).
            uniques = [
                Index(
                    name=str(u.get("name") or f"unique({', '.join(u.get('column_names') or [])})"),
                    columns=tuple(str(x) for x in (u.get("column_names") or [])),
                    unique=True,
                )
                for u in insp.get_unique_constraints(table_name)
            ]
            indexes = tuple(
                sorted(
                    [
                        *(
                            Index(
                                name=str(i.get("name") or "(unnamed)"),
                                columns=tuple(str(x) for x in (i.get("column_names") or []) if x is not None),
                                unique=bool(i.get("unique")),
                            )
                            for i in insp.get_indexes(table_name)
                        ),
                        *uniques,
                    ],
                    key=lambda i: i.name,
                )
            )
            tables.append(Table(name=table_name, columns=columns, indexes=indexes))
        return Schema(tables=tuple(tables), dialect=engine.dialect.name, source=safe)
    except SQLAlchemyError as exc:
        raise TargetError(f"cannot read schema of {safe}: {type(exc).__name__}: {exc}") from exc
    finally:
        engine.dispose()


def _type_string(sa_type: Any, dialect: Any) -> str:
    try:
        return str(sa_type.compile(dialect=dialect))
    except Exception:
        return str(sa_type)


# --------------------------------------------------------------------------- pure diff

_INT_RANK = {
    "TINYINT": 1,
    "SMALLINT": 2,
    "INT2": 2,
    "MEDIUMINT": 3,
    "INT": 4,
    "INTEGER": 4,
    "INT4": 4,
    "BIGINT": 5,
    "INT8": 5,
}
_FLOAT_RANK = {"REAL": 1, "FLOAT4": 1, "FLOAT": 2, "DOUBLE": 2, "DOUBLE PRECISION": 2, "FLOAT8": 2}
_TEXT_UNBOUNDED = {
    "TEXT": float("inf"),
    "CLOB": float("inf"),
    "LONGTEXT": 4294967295,
    "MEDIUMTEXT": 16777215,
    "TINYTEXT": 255,
}
_TEXT_BOUNDED = {
    "VARCHAR",
    "CHAR",
    "NVARCHAR",
    "NCHAR",
    "CHARACTER",
    "CHARACTER VARYING",
    "VARCHAR2",
    "NVARCHAR2",
    "STRING",
}
_BIN_UNBOUNDED = {
    "BLOB": float("inf"),
    "BYTEA": float("inf"),
    "LONGBLOB": 4294967295,
    "MEDIUMBLOB": 16777215,
    "TINYBLOB": 255,
}
_BIN_BOUNDED = {"VARBINARY", "BINARY"}
_DECIMAL = {"NUMERIC", "DECIMAL", "NUMBER"}
_TYPE_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_ ]*)\s*(?:\(([^)]*)\))?\s*(.*)$")


@dataclass(frozen=True)
class _Kind:
    family: str
    capacity: tuple[float, ...]  # bigger holds more; compared element-wise


def _kind(type_string: str) -> _Kind:
    m = _TYPE_RE.match(type_string.upper())
    if not m:
        return _Kind("other:" + type_string.upper(), ())
    base = " ".join(m.group(1).split())
    args = [a.strip() for a in (m.group(2) or "").split(",") if a.strip()]
    nums = [float(a) for a in args if re.fullmatch(r"\d+", a)]
    if base in _INT_RANK:
        return _Kind("integer", (_INT_RANK[base],))
    if base in _FLOAT_RANK:
        return _Kind("float", (_FLOAT_RANK[base],))
    if base in _TEXT_UNBOUNDED:
        return _Kind("text", (_TEXT_UNBOUNDED[base],))
    if base in _TEXT_BOUNDED:
        return _Kind("text", (nums[0] if nums else float("inf"),))
    if base in _BIN_UNBOUNDED:
        return _Kind("binary", (_BIN_UNBOUNDED[base],))
    if base in _BIN_BOUNDED:
        return _Kind("binary", (nums[0] if nums else float("inf"),))
    if base in _DECIMAL:
        precision = nums[0] if nums else float("inf")
        scale = nums[1] if len(nums) > 1 else 0.0
        # Integer digits and fraction digits both have to fit.
        return _Kind("decimal", (precision - scale, scale))
    return _Kind("other:" + " ".join(type_string.upper().split()), ())


def _compare_types(old: str, new: str) -> str | None:
    """The rule id for a type change, or None when the types are equivalent."""
    if " ".join(old.upper().split()) == " ".join(new.upper().split()):
        return None
    ko, kn = _kind(old), _kind(new)
    if ko.family != kn.family:
        return "db-column-type-changed"
    if ko.capacity == kn.capacity:
        return None  # INT vs INTEGER
    if any(n < o for o, n in zip(ko.capacity, kn.capacity, strict=False)):
        return "db-column-type-narrowed"
    return "db-column-type-widened"


def diff_schemas(old: Schema, new: Schema) -> list[Change]:
    """Changes between two schemas (``path`` = table, ``location`` = column or index)."""
    changes: list[Change] = []

    def emit(rule: str, table: str, location: str, message: str) -> None:
        changes.append(Change(_LEVEL[rule], rule, table, "", location, message))

    new_tables = {t.name: t for t in new.tables}
    old_tables = {t.name: t for t in old.tables}
    for table in old.tables:
        nt = new_tables.get(table.name)
        if nt is None:
            emit("db-table-removed", table.name, "", f"table {table.name} was dropped")
            continue
        new_cols = {c.name: c for c in nt.columns}
        old_cols = {c.name for c in table.columns}
        for col in table.columns:
            nc = new_cols.get(col.name)
            where = f"{table.name}.{col.name}"
            if nc is None:
                emit("db-column-removed", table.name, col.name, f"column {where} was dropped")
                continue
            rule = _compare_types(col.type, nc.type)
            if rule is not None:
                emit(rule, table.name, col.name, f"column {where}: type {col.type} -> {nc.type}")
            if col.nullable and not nc.nullable:
                emit("db-column-became-not-null", table.name, col.name, f"column {where} became NOT NULL")
            elif nc.nullable and not col.nullable:
                emit("db-column-became-nullable", table.name, col.name, f"column {where} became nullable")
        for col in nt.columns:
            if col.name in old_cols:
                continue
            if not col.nullable and not col.has_default:
                emit(
                    "db-column-added-required",
                    table.name,
                    col.name,
                    f"column {table.name}.{col.name} ({col.type}) was added NOT NULL without a default",
                )
            else:
                emit("db-column-added", table.name, col.name, f"column {table.name}.{col.name} ({col.type}) was added")
        new_idx = {i.name: i for i in nt.indexes}
        old_idx = {i.name for i in table.indexes}
        for idx in table.indexes:
            ni = new_idx.get(idx.name)
            if ni is None:
                emit(
                    "db-index-removed",
                    table.name,
                    idx.name,
                    f"index {idx.name} on {table.name}({', '.join(idx.columns)}) was dropped",
                )
            elif ni.unique and not idx.unique:
                emit("db-index-became-unique", table.name, idx.name, f"index {idx.name} on {table.name} became UNIQUE")
        for idx in nt.indexes:
            if idx.name not in old_idx:
                rule = "db-unique-added" if idx.unique else "db-index-added"
                emit(
                    rule,
                    table.name,
                    idx.name,
                    f"{'unique ' if idx.unique else ''}index {idx.name} on {table.name}({', '.join(idx.columns)}) was added",
                )
    for table in new.tables:
        if table.name not in old_tables:
            emit("db-table-added", table.name, "", f"table {table.name} was added")
    return changes


def db_schema_claims(
    changes: Iterable[Change] | None,
    *,
    tables_compared: int,
    fail_on_warn: bool = False,
    reason: str = "",
    section: str = "contract",
    evidence_file: str = "contract.json",
    required: bool = True,
) -> list[Claim]:
    """The claim "Database schema change is backward compatible"."""
    statement = "Database schema change is backward compatible"
    claim_id = f"{section}.db_schema_compatible"
    evidence = (EvidenceRef(section=section, file=evidence_file, records=("database",)),)
    if changes is None or tables_compared <= 0:
        why = reason or ("no schema could be read" if changes is None else "the baseline database has no tables")
        return [Claim(claim_id, section, statement, Status.INCONCLUSIVE, f"no comparison: {why}", required, evidence)]
    changes = list(changes)
    counts = count_levels(changes)
    breaking = counts["ERR"] + (counts["WARN"] if fail_on_warn else 0)
    failed = breaking > 0
    return [
        Claim(
            claim_id,
            section,
            statement,
            Status.FAIL if failed else Status.PASS,
            f"{counts['ERR']} ERR, {counts['WARN']} WARN, {counts['INFO']} INFO across {tables_compared} tables compared",
            required,
            evidence,
            details={"counts": counts},
            figure=Figure(
                kind="count",
                value=float(breaking),
                k=breaking,
                test="database schema diff",
                what="breaking schema changes (ERR or WARN)" if fail_on_warn else "breaking schema changes (ERR)",
            ),
        )
    ]
