"""Database schema comparison on real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from stability_lib.contract.db_schema import (
    DB_RULES,
    Column,
    Schema,
    Table,
    db_schema_claims,
    diff_schemas,
    read_schema,
    redact_url,
    to_sqlalchemy_url,
)
from stability_lib.contract.openapi_diff import Level
from stability_lib.core.errors import TargetError
from stability_lib.core.models import Status

BASE_DDL = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email VARCHAR(255) NOT NULL,
    name TEXT,
    age SMALLINT
);
CREATE INDEX ix_users_name ON users (name);
CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id INTEGER, total NUMERIC(10, 2));
"""


def _db(tmp_path: Path, name: str, ddl: str) -> Path:
    path = tmp_path / name
    with sqlite3.connect(path) as conn:
        conn.executescript(ddl)
    return path


def _rules(tmp_path: Path, new_ddl: str) -> list[tuple[str, Level, str, str]]:
    old = read_schema(to_sqlalchemy_url(str(_db(tmp_path, "old.db", BASE_DDL))))
    new = read_schema(to_sqlalchemy_url(str(_db(tmp_path, "new.db", new_ddl))))
    return [(c.rule, c.level, c.path, c.location) for c in diff_schemas(old, new)]


def test_read_schema_sees_tables_columns_and_indexes(tmp_path: Path) -> None:
    _db(tmp_path, "old.db", BASE_DDL)
    schema = read_schema(to_sqlalchemy_url("old.db", base_dir=tmp_path))  # a relative path is a SQLite file
    users = schema.table("users")
    assert users is not None
    assert [(c.name, c.type, c.nullable) for c in users.columns] == [
        ("id", "INTEGER", True),  # SQLite reports INTEGER PRIMARY KEY as nullable
        ("email", "VARCHAR(255)", False),
        ("name", "TEXT", True),
        ("age", "SMALLINT", True),
    ]
    assert [(i.name, i.columns, i.unique) for i in users.indexes] == [("ix_users_name", ("name",), False)]
    assert schema.dialect == "sqlite"
    assert {t.name for t in schema.tables} == {"users", "orders"}


def test_same_schema_has_no_changes(tmp_path: Path) -> None:
    assert _rules(tmp_path, BASE_DDL) == []


def test_dropped_column_is_err(tmp_path: Path) -> None:
    ddl = BASE_DDL.replace("    age SMALLINT\n", "").replace("name TEXT,", "name TEXT")
    assert _rules(tmp_path, ddl) == [("db-column-removed", Level.ERR, "users", "age")]


def test_added_column_is_info(tmp_path: Path) -> None:
    ddl = BASE_DDL.replace("age SMALLINT", "age SMALLINT,\n    city VARCHAR(80)")
    assert _rules(tmp_path, ddl) == [("db-column-added", Level.INFO, "users", "city")]


@pytest.mark.parametrize(
    ("old_sql", "new_sql", "rule"),
    [
        ("email VARCHAR(255)", "email VARCHAR(50)", "db-column-type-narrowed"),
        ("name TEXT", "name VARCHAR(100)", "db-column-type-narrowed"),
        ("id BIGINT", "id INTEGER", "db-column-type-narrowed"),
        ("total NUMERIC(10, 2)", "total NUMERIC(10, 1)", "db-column-type-narrowed"),
        ("name TEXT", "name INTEGER", "db-column-type-changed"),
        ("age SMALLINT", "age BIGINT", "db-column-type-widened"),
        ("email VARCHAR(255)", "email TEXT", "db-column-type-widened"),
        ("name TEXT,", "name TEXT NOT NULL,", "db-column-became-not-null"),
        ("email VARCHAR(255) NOT NULL", "email VARCHAR(255)", "db-column-became-nullable"),
        ("CREATE INDEX ix_users_name ON users (name);", "", "db-index-removed"),
        ("CREATE INDEX ix_users_name", "CREATE UNIQUE INDEX ix_users_name", "db-index-became-unique"),
        (
            "CREATE INDEX ix_users_name ON users (name);",
            "CREATE INDEX ix_users_name ON users (name);\nCREATE INDEX ix_age ON users (age);",
            "db-index-added",
        ),
        (
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id INTEGER, total NUMERIC(10, 2));",
            "",
            "db-table-removed",
        ),
        (
            "CREATE INDEX ix_users_name",
            "CREATE TABLE audit (id INTEGER);\nCREATE INDEX ix_users_name",
            "db-table-added",
        ),
    ],
)
def test_each_db_rule(tmp_path: Path, old_sql: str, new_sql: str, rule: str) -> None:
    assert old_sql in BASE_DDL
    found = _rules(tmp_path, BASE_DDL.replace(old_sql, new_sql))
    levels = {r.id: r.level for r in DB_RULES}
    assert [(r, lvl) for r, lvl, *_ in found] == [(rule, levels[rule])]


def test_missing_sqlite_file_is_an_error_not_an_empty_schema(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="not found"):
        read_schema(to_sqlalchemy_url(str(tmp_path / "nope.db")))
    assert not (tmp_path / "nope.db").exists()


def test_password_never_reaches_evidence() -> None:
    assert "s3cret" not in redact_url("postgresql://app:s3cret@db.example:5432/app")


def test_claims() -> None:
    old = Schema((Table("t", (Column("a", "INTEGER", True),)),))
    new = Schema((Table("t", ()),))
    assert db_schema_claims(diff_schemas(old, new), tables_compared=1)[0].status is Status.FAIL
    ok = db_schema_claims(diff_schemas(old, old), tables_compared=1)[0]
    assert ok.status is Status.PASS
    assert ok.statistic == "0 ERR, 0 WARN, 0 INFO across 1 tables compared"
    assert db_schema_claims(None, tables_compared=0)[0].status is Status.INCONCLUSIVE
    assert db_schema_claims([], tables_compared=0)[0].status is Status.INCONCLUSIVE


def test_an_added_required_column_and_a_new_unique_constraint_break_old_writers(tmp_path) -> None:
    import sqlite3

    from stability_lib.contract.db_schema import diff_schemas, read_schema

    old, new = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    sqlite3.connect(old).executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT, note TEXT);")
    sqlite3.connect(new).executescript(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT UNIQUE, note TEXT,"
        " tenant TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'a');"
    )
    found = {
        (c.rule, c.level.value, c.location)
        for c in diff_schemas(read_schema(f"sqlite:///{old}"), read_schema(f"sqlite:///{new}"))
    }
    assert ("db-column-added-required", "ERR", "tenant") in found
    assert ("db-column-added", "INFO", "kind") in found  # NOT NULL with a default: old inserts still work
    assert any(rule == "db-unique-added" and level == "WARN" for rule, level, _ in found)
