"""The SQL functions compiled CQL uses, and their default renderings; each engine's module in this
package renders them for its database. Together they are the one place that knows SQLite's
JSON1, date and GLOB functions and their PostgreSQL (jsonb, regular expression), DuckDB (`duckdb`,
through duckdb_engine) and ClickHouse (`clickhousedb`, clickhouse-connect's dialect) equivalents.

Each function is an SQLAlchemy element whose inputs are SQL expressions or bound values, so
statements stay cacheable; the rendering is chosen when a statement is compiled for an engine. Both
renderings give the same answers for every input (the differential tests run on both databases):

- JSON values are read at a path of keys. On SQLite the path is JSON1's (`$."a"."b"`), on PostgreSQL
  a text array (`#> ARRAY['a','b']`); documents are JSON text on SQLite and jsonb (or text cast to
  jsonb) on PostgreSQL. A JSON kind is named as SQLite's `json_type` names it.
- Dates are Julian day numbers, as SQLite's `julianday` gives them; PostgreSQL computes them with
  `segment_audiences_julianday` (created by the schema migration), NULL where the text is not a time.
- Text order is by code point (SQLite's BINARY; PostgreSQL's "C" collation; DuckDB's and ClickHouse's
  byte order, which is code point order in UTF-8).
- DuckDB and ClickHouse read JSON numbers as doubles. A real number's text is written as Python
  writes it (`30.0`, `2.5`, `1e+20`), except that ClickHouse writes integral reals of 1e16 and more
  in full and DuckDB writes reals below 1e-4 with an exponent (`1e-05`).
"""

import re

from sqlalchemy import ARRAY, Boolean, Float, Integer, Numeric, String, Text, func, literal, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


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


def render(compiler, expression, **kw) -> str:
    return compiler.process(expression, **kw)


class json_kind(_Function):
    """The kind of the JSON value at a path (`integer`, `real`, `text`, `true`, `false`, `null`,
    `object`, `array`), NULL where there is none."""

    inherit_cache = True
    type = String()
    name = "json_kind"


class json_number(_Function):
    """The JSON number at a path, as a number (read it only where its kind is integer or real)."""

    inherit_cache = True
    type = Numeric()
    name = "json_number"


class json_string(_Function):
    """The JSON string at a path, unquoted (read it only where its kind is text)."""

    inherit_cache = True
    type = String()
    name = "json_string"


class json_at(_Function):
    """The JSON text of the value at a path (SQLite keeps its JSON subtype, so JSON functions embed it
    as JSON), NULL where there is none."""

    inherit_cache = True
    type = Text()
    name = "json_at"


class json_spelled(_Function):
    """The JSON text of the value at a path as plain text (how a number is written)."""

    inherit_cache = True
    type = Text()
    name = "json_spelled"


class spelled_number(_Function):
    """The number a text spells as a JSON number, else NULL."""

    inherit_cache = True
    type = Numeric()
    name = "spelled_number"


class to_json(_Function):
    """A number or text as JSON text (NULL stays NULL)."""

    inherit_cache = True
    type = Text()
    name = "to_json"


class real_to_json(_Function):
    """A real number as JSON text (NULL stays NULL); `to_json` everywhere but on ClickHouse, which
    would write an integral real without its `.0`."""

    inherit_cache = True
    type = Text()
    name = "real_to_json"


@compiles(real_to_json)
def _real_to_json_default(element, compiler, **kw):
    return render(compiler, to_json(*element.arguments()), **kw)


class parsed_json(_Function):
    """A JSON text, checked and written minimally by the database."""

    inherit_cache = True
    type = Text()
    name = "parsed_json"


class json_array_of(_Function):
    """An aggregate: the group's texts as a JSON array in code point order (`[]` for none)."""

    inherit_cache = True
    type = Text()
    name = "json_array_of"


class julian_day(_Function):
    """The Julian day number of a date or time text, NULL where it is not one."""

    inherit_cache = True
    type = Float()
    name = "julian_day"


class day_of(_Function):
    """The UTC date (`yyyy-mm-dd`) of a Julian day number."""

    inherit_cache = True
    type = String()
    name = "day_of"


class glob(_Function):
    """Whether a text matches a GLOB pattern (`*`, `?`, `[...]`), case-sensitively. The pattern is
    part of the statement's text (`matches_glob`), not a bound value."""

    inherit_cache = True
    type = Boolean()
    name = "glob"


def matches_glob(text, pattern: str) -> glob:
    assert "'" not in pattern and "%" not in pattern
    return glob(text, literal_column(f"'{pattern}'"))


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


class binary(_Function):
    """A text compared and ordered by code point."""

    inherit_cache = True
    type = String()
    name = "binary"


class text_length(_Function):
    """How many characters a text has."""

    inherit_cache = True
    type = Integer()
    name = "text_length"


@compiles(text_length)
def _text_length_default(element, compiler, **kw):
    return render(compiler, func.length(*element.arguments()), **kw)


class text_part(_Function):
    """The characters of a text from a 1-based position, `length` of them or to its end."""

    inherit_cache = True
    type = String()
    name = "text_part"


@compiles(text_part)
def _text_part_default(element, compiler, **kw):
    return render(compiler, func.substr(*element.arguments()), **kw)


class nullable(_Function):
    """A value that may be NULL (ClickHouse's `lag` gives NULL before the first row only then)."""

    inherit_cache = True
    name = "nullable"


@compiles(nullable)
def _nullable_default(element, compiler, **kw):
    [value] = element.arguments()
    return render(compiler, value, **kw)


class unindexed(_Function):
    """A text column SQLite must not read through an index: grouped by it, SQLite otherwise walks the
    index in its order and reads each row at random, about twice as slow as a scan and a sort."""

    inherit_cache = True
    type = String()
    name = "unindexed"


@compiles(unindexed)
def _unindexed_default(element, compiler, **kw):
    [value] = element.arguments()
    return render(compiler, value, **kw)


class date_text(_Function):
    """A warehouse DATE column's value as `yyyy-mm-dd` (SQLite keeps dates as that text already)."""

    inherit_cache = True
    type = String()
    name = "date_text"


@compiles(date_text)
def _date_text_default(element, compiler, **kw):
    [value] = element.arguments()
    return f"CAST({render(compiler, value, **kw)} AS TEXT)"


class timestamp_text(_Function):
    """A warehouse TIMESTAMP column's value as `yyyy-mm-ddThh:mm:ssZ`, read as UTC."""

    inherit_cache = True
    type = String()
    name = "timestamp_text"


@compiles(timestamp_text)
def _timestamp_text_default(element, compiler, **kw):
    [value] = element.arguments()
    return f"strftime('%Y-%m-%dT%H:%M:%SZ', {render(compiler, value, **kw)})"
