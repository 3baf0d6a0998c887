"""The database's plan for a statement, read the same way on SQLite and PostgreSQL: one (alias,
detail) pair per step that reads a table, so a test can say how a table is read."""

from __future__ import annotations

import re
from contextlib import contextmanager

from sqlalchemy import Connection, Executable, event


def table_reads(connection: Connection, statement: Executable) -> list[tuple[str, str]]:
    """Each step of `statement`'s plan that reads a table: its alias, and the database's own words
    for how (SQLite's `SEARCH e1 USING INDEX …`, PostgreSQL's index name and condition)."""
    rows = _plan(connection, statement)
    if connection.dialect.name == "postgresql":
        scans = [node for node in _nodes(rows[0][0][0]["Plan"]) if node["Node Type"].endswith("Scan")]
        return [(node["Alias"], f"{node.get('Index Name', 'sequential scan')} {node.get('Index Cond', '')}".strip())
                for node in scans if "Relation Name" in node]
    return [(match.group(2), row[-1]) for row in rows if (match := re.match(r"(SCAN|SEARCH) (\w+)", row[-1]))]


def sorts(connection: Connection, statement: Executable) -> bool:
    """Whether `statement`'s plan sorts rows (rather than reading them in an index's order)."""
    rows = _plan(connection, statement)
    if connection.dialect.name == "postgresql":
        return any(node["Node Type"].endswith("Sort") for node in _nodes(rows[0][0][0]["Plan"]))
    return any("TEMP B-TREE FOR ORDER BY" in row[-1] for row in rows)


def _plan(connection: Connection, statement: Executable) -> list:
    """The rows of the database's plan for `statement` (PostgreSQL's as one JSON document)."""
    with _explaining(connection):
        return connection.execute(statement).all()


@contextmanager
def _explaining(connection: Connection):
    """Statements run on `connection` answer with their plan instead of their rows."""
    prefix = "EXPLAIN (FORMAT JSON) " if connection.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "

    def explain(conn, cursor, statement, parameters, context, executemany):
        return prefix + statement, parameters

    event.listen(connection, "before_cursor_execute", explain, retval=True)
    try:
        yield
    finally:
        event.remove(connection, "before_cursor_execute", explain)


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)
