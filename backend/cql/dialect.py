"""The SQL functions compiled CQL uses, rendered for each database: the one place that knows SQLite's
JSON1, date and GLOB functions and their PostgreSQL (jsonb, regular expression) equivalents.

Each function is an SQLAlchemy element whose inputs are SQL expressions or bound values, so
statements stay cacheable; the rendering is chosen when a statement is compiled for an engine. Both
renderings give the same answers for every input (the differential tests run on both databases):

- JSON values are read at a path of keys. On SQLite the path is JSON1's (`$."a"."b"`), on PostgreSQL
  a text array (`#> ARRAY['a','b']`); documents are JSON text on SQLite and jsonb (or text cast to
  jsonb) on PostgreSQL. A JSON kind is named as SQLite's `json_type` names it.
- Dates are Julian day numbers, as SQLite's `julianday` gives them; PostgreSQL computes them with
  `segment_audiences_julianday` (created by the schema migration), NULL where the text is not a time.
- Text order is by code point (SQLite's BINARY; PostgreSQL's "C" collation).
"""

from __future__ import annotations

import re

from sqlalchemy import ARRAY, Boolean, Float, Integer, Numeric, Select, String, Text, case, func, literal, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

# What PostgreSQL's julianday function needs: the migration creates it from this text.
POSTGRES_JULIANDAY = """
CREATE OR REPLACE FUNCTION segment_audiences_julianday(moment text) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET timezone = 'UTC' AS $$
BEGIN
    RETURN extract(epoch FROM moment::timestamptz) / 86400.0 + 2440587.5;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$
"""

JSON_NUMBER = r"^[ \t\n\r]*-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?[ \t\n\r]*$"


def json_path(parts: tuple[str, ...]) -> str:
    """A JSON1 path with every key quoted, so keys holding dots address one level."""
    return "$" + "".join(f'."{part}"' for part in parts)


def path_arguments(parts: tuple[str, ...]) -> tuple:
    """The two spellings of one path, as bound values: each dialect renders its own."""
    return literal(json_path(parts)), literal(list(parts), ARRAY(Text))


class _Function(FunctionElement):
    inherit_cache = True

    def arguments(self) -> list:
        return list(self.clauses.clauses)


def _render(compiler, expression, **kw) -> str:
    return compiler.process(expression, **kw)


def _jsonb_at(compiler, element, **kw) -> str:
    """`(CAST(document AS jsonb) #> path)` for an element whose arguments are (document, path, path[])."""
    document, _, parts = element.arguments()
    return f"(CAST({_render(compiler, document, **kw)} AS jsonb) #> {_render(compiler, parts, **kw)})"


class json_kind(_Function):
    """The kind of the JSON value at a path (`integer`, `real`, `text`, `true`, `false`, `null`,
    `object`, `array`), NULL where there is none."""

    inherit_cache = True
    type = String()
    name = "json_kind"


@compiles(json_kind, "sqlite")
def _json_kind_sqlite(element, compiler, **kw):
    document, path, _ = element.arguments()
    return _render(compiler, func.json_type(document, path), **kw)


@compiles(json_kind, "postgresql")
def _json_kind_postgresql(element, compiler, **kw):
    value = _jsonb_at(compiler, element, **kw)
    return (f"CASE jsonb_typeof({value}) WHEN 'number' THEN CASE WHEN ({value})::text ~ '^-?[0-9]+$' "
            f"THEN 'integer' ELSE 'real' END WHEN 'string' THEN 'text' WHEN 'boolean' THEN ({value})::text "
            f"ELSE jsonb_typeof({value}) END")


class json_number(_Function):
    """The JSON number at a path, as a number (read it only where its kind is integer or real)."""

    inherit_cache = True
    type = Numeric()
    name = "json_number"


@compiles(json_number, "sqlite")
def _json_number_sqlite(element, compiler, **kw):
    document, path, _ = element.arguments()
    return _render(compiler, func.json_extract(document, path), **kw)


@compiles(json_number, "postgresql")
def _json_number_postgresql(element, compiler, **kw):
    return f"(({_jsonb_at(compiler, element, **kw)}) #>> '{{}}')::numeric"


class json_string(_Function):
    """The JSON string at a path, unquoted (read it only where its kind is text)."""

    inherit_cache = True
    type = String()
    name = "json_string"


@compiles(json_string, "sqlite")
def _json_string_sqlite(element, compiler, **kw):
    document, path, _ = element.arguments()
    return _render(compiler, func.json_extract(document, path), **kw)


@compiles(json_string, "postgresql")
def _json_string_postgresql(element, compiler, **kw):
    return f"(({_jsonb_at(compiler, element, **kw)}) #>> '{{}}')"


class json_at(_Function):
    """The JSON text of the value at a path (SQLite keeps its JSON subtype, so JSON functions embed it
    as JSON), NULL where there is none."""

    inherit_cache = True
    type = Text()
    name = "json_at"


@compiles(json_at, "sqlite")
def _json_at_sqlite(element, compiler, **kw):
    document, path, _ = element.arguments()
    return _render(compiler, document.op("->")(path), **kw)


@compiles(json_at, "postgresql")
def _json_at_postgresql(element, compiler, **kw):
    return f"({_jsonb_at(compiler, element, **kw)})::text"


class json_spelled(_Function):
    """The JSON text of the value at a path as plain text (how a number is written)."""

    inherit_cache = True
    type = Text()
    name = "json_spelled"


@compiles(json_spelled, "sqlite")
def _json_spelled_sqlite(element, compiler, **kw):
    document, path, _ = element.arguments()
    return _render(compiler, literal("").op("||")(document.op("->")(path)), **kw)


@compiles(json_spelled, "postgresql")
def _json_spelled_postgresql(element, compiler, **kw):
    return f"({_jsonb_at(compiler, element, **kw)})::text"


class spelled_number(_Function):
    """The number a text spells as a JSON number, else NULL."""

    inherit_cache = True
    type = Numeric()
    name = "spelled_number"


@compiles(spelled_number, "sqlite")
def _spelled_number_sqlite(element, compiler, **kw):
    [text] = element.arguments()
    number = func.json_extract(text, "$")
    kinds = case({"integer": number, "real": number}, value=func.json_type(text))
    return _render(compiler, case((func.json_valid(text) == 1, kinds)), **kw)


@compiles(spelled_number, "postgresql")
def _spelled_number_postgresql(element, compiler, **kw):
    [text] = element.arguments()
    text_sql = _render(compiler, text, **kw)
    return f"CASE WHEN {text_sql} ~ '{JSON_NUMBER}' THEN CAST({text_sql} AS numeric) END"


class to_json(_Function):
    """A number or text as JSON text (NULL stays NULL)."""

    inherit_cache = True
    type = Text()
    name = "to_json"


@compiles(to_json, "sqlite")
def _to_json_sqlite(element, compiler, **kw):
    [value] = element.arguments()
    return _render(compiler, func.nullif(func.json_quote(value), "null"), **kw)


@compiles(to_json, "postgresql")
def _to_json_postgresql(element, compiler, **kw):
    [value] = element.arguments()
    return f"to_jsonb({_render(compiler, value, **kw)})::text"


class parsed_json(_Function):
    """A JSON text, checked and written minimally by the database."""

    inherit_cache = True
    type = Text()
    name = "parsed_json"


@compiles(parsed_json, "sqlite")
def _parsed_json_sqlite(element, compiler, **kw):
    [value] = element.arguments()
    return _render(compiler, func.json(value), **kw)


@compiles(parsed_json, "postgresql")
def _parsed_json_postgresql(element, compiler, **kw):
    [value] = element.arguments()
    return f"CAST(CAST({_render(compiler, value, **kw)} AS jsonb) AS text)"


class json_array_of(_Function):
    """An aggregate: the group's texts as a JSON array in code point order (`[]` for none)."""

    inherit_cache = True
    type = Text()
    name = "json_array_of"


@compiles(json_array_of, "sqlite")
def _json_array_of_sqlite(element, compiler, **kw):
    [value] = element.arguments()
    return _render(compiler, func.json_group_array(value), **kw)


@compiles(json_array_of, "postgresql")
def _json_array_of_postgresql(element, compiler, **kw):
    [value] = element.arguments()
    value_sql = _render(compiler, value, **kw)
    return f"COALESCE(jsonb_agg({value_sql} ORDER BY {value_sql} COLLATE \"C\"), '[]'::jsonb)::text"


class julian_day(_Function):
    """The Julian day number of a date or time text, NULL where it is not one."""

    inherit_cache = True
    type = Float()
    name = "julian_day"


@compiles(julian_day, "sqlite")
def _julian_day_sqlite(element, compiler, **kw):
    return _render(compiler, func.julianday(*element.arguments()), **kw)


@compiles(julian_day, "postgresql")
def _julian_day_postgresql(element, compiler, **kw):
    [value] = element.arguments()
    return f"segment_audiences_julianday({_render(compiler, value, **kw)})"


class day_of(_Function):
    """The UTC date (`yyyy-mm-dd`) of a Julian day number."""

    inherit_cache = True
    type = String()
    name = "day_of"


@compiles(day_of, "sqlite")
def _day_of_sqlite(element, compiler, **kw):
    return _render(compiler, func.date(*element.arguments()), **kw)


@compiles(day_of, "postgresql")
def _day_of_postgresql(element, compiler, **kw):
    [value] = element.arguments()
    return (f"to_char(to_timestamp(({_render(compiler, value, **kw)} - 2440587.5) * 86400) AT TIME ZONE 'UTC', "
            f"'YYYY-MM-DD')")


class glob(_Function):
    """Whether a text matches a GLOB pattern (`*`, `?`, `[...]`), case-sensitively. The pattern is
    part of the statement's text (`matches_glob`), not a bound value."""

    inherit_cache = True
    type = Boolean()
    name = "glob"


def matches_glob(text, pattern: str) -> glob:
    assert "'" not in pattern and "%" not in pattern
    return glob(text, literal_column(f"'{pattern}'"))


@compiles(glob, "sqlite")
def _glob_sqlite(element, compiler, **kw):
    text, pattern = element.arguments()
    return f"({_render(compiler, text, **kw)} GLOB {pattern.name})"


@compiles(glob, "postgresql")
def _glob_postgresql(element, compiler, **kw):
    text, pattern = element.arguments()
    return f"({_render(compiler, text, **kw)} ~ '{glob_regex(pattern.name[1:-1])}')"


def glob_regex(pattern: str) -> str:
    """A GLOB pattern as an anchored POSIX regular expression."""
    out, index = ["^"], 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and "]" in pattern[index + 1:]:
            end = pattern.index("]", index + 2) if pattern[index + 1] == "]" else pattern.index("]", index + 1)
            body = pattern[index + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out) + "$"


class position(_Function):
    """Where a part first occurs in a text (1-based), 0 where it does not."""

    inherit_cache = True
    type = Integer()
    name = "position"


@compiles(position, "sqlite")
def _position_sqlite(element, compiler, **kw):
    return _render(compiler, func.instr(*element.arguments()), **kw)


@compiles(position, "postgresql")
def _position_postgresql(element, compiler, **kw):
    return _render(compiler, func.strpos(*element.arguments()), **kw)


class binary(_Function):
    """A text compared and ordered by code point."""

    inherit_cache = True
    type = String()
    name = "binary"


@compiles(binary, "sqlite")
def _binary_sqlite(element, compiler, **kw):
    [value] = element.arguments()
    return _render(compiler, value, **kw)


@compiles(binary, "postgresql")
def _binary_postgresql(element, compiler, **kw):
    [value] = element.arguments()
    return f'({_render(compiler, value, **kw)} COLLATE "C")'


def one_step(statement: Select) -> Select:
    """`statement` kept as a step of its own in PostgreSQL's plan (`OFFSET 0`). Its planner otherwise
    inlines a one-row derived table into every reference to its columns, copying the sub-selects it
    holds, so nested bindings grow the plan (and its planning time) exponentially."""
    return statement.suffix_with("OFFSET 0", dialect="postgresql")
