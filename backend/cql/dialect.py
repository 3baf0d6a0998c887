"""The SQL functions compiled CQL uses, rendered for each database: the one place that knows SQLite's
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

from __future__ import annotations

import re

from sqlalchemy import ARRAY, Boolean, Float, Integer, Numeric, String, Text, case, func, literal, literal_column
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
JSON_SPACE_AROUND = r"^[ \t\n\r]+|[ \t\n\r]+$"


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


class real_to_json(_Function):
    """A real number as JSON text (NULL stays NULL); `to_json` everywhere but on ClickHouse, which
    would write an integral real without its `.0`."""

    inherit_cache = True
    type = Text()
    name = "real_to_json"


@compiles(real_to_json)
def _real_to_json_default(element, compiler, **kw):
    return _render(compiler, to_json(*element.arguments()), **kw)


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


class text_length(_Function):
    """How many characters a text has."""

    inherit_cache = True
    type = Integer()
    name = "text_length"


@compiles(text_length)
def _text_length_default(element, compiler, **kw):
    return _render(compiler, func.length(*element.arguments()), **kw)


class text_part(_Function):
    """The characters of a text from a 1-based position, `length` of them or to its end."""

    inherit_cache = True
    type = String()
    name = "text_part"


@compiles(text_part)
def _text_part_default(element, compiler, **kw):
    return _render(compiler, func.substr(*element.arguments()), **kw)


# -- DuckDB ---------------------------------------------------------------------------------------


def _duck_path(compiler, element, **kw) -> tuple[str, str]:
    document, path, _ = element.arguments()
    return _render(compiler, document, **kw), _render(compiler, path, **kw)


@compiles(json_kind, "duckdb")
def _json_kind_duckdb(element, compiler, **kw):
    document, path = _duck_path(compiler, element, **kw)
    return (f"CASE json_type({document}, {path}) WHEN 'BIGINT' THEN 'integer' WHEN 'UBIGINT' THEN 'integer' "
            f"WHEN 'DOUBLE' THEN 'real' WHEN 'VARCHAR' THEN 'text' WHEN 'NULL' THEN 'null' "
            f"WHEN 'BOOLEAN' THEN json_extract_string({document}, {path}) WHEN 'OBJECT' THEN 'object' "
            f"WHEN 'ARRAY' THEN 'array' END")


@compiles(json_number, "duckdb")
def _json_number_duckdb(element, compiler, **kw):
    document, path = _duck_path(compiler, element, **kw)
    return f"TRY_CAST(json_extract({document}, {path}) AS DOUBLE)"


@compiles(json_string, "duckdb")
def _json_string_duckdb(element, compiler, **kw):
    document, path = _duck_path(compiler, element, **kw)
    return f"json_extract_string({document}, {path})"


@compiles(json_at, "duckdb")
@compiles(json_spelled, "duckdb")
def _json_at_duckdb(element, compiler, **kw):
    document, path = _duck_path(compiler, element, **kw)
    value = f"json_extract({document}, {path})"
    return (f"CASE WHEN json_type({document}, {path}) = 'DOUBLE' THEN CAST(CAST({value} AS DOUBLE) AS VARCHAR) "
            f"ELSE CAST({value} AS VARCHAR) END")


@compiles(spelled_number, "duckdb")
def _spelled_number_duckdb(element, compiler, **kw):
    [text] = element.arguments()
    text_sql = _render(compiler, text, **kw)
    return (f"CASE WHEN regexp_matches({text_sql}, '{JSON_NUMBER}') "
            f"THEN TRY_CAST(trim({text_sql}, ' ' || chr(9) || chr(10) || chr(13)) AS DOUBLE) END")


@compiles(to_json, "duckdb")
def _to_json_duckdb(element, compiler, **kw):
    [value] = element.arguments()
    return f"CAST(to_json({_render(compiler, value, **kw)}) AS VARCHAR)"


@compiles(parsed_json, "duckdb")
@compiles(parsed_json, "clickhousedb")
@compiles(binary, "duckdb")
@compiles(binary, "clickhousedb")
def _as_it_is(element, compiler, **kw):
    [value] = element.arguments()
    return _render(compiler, value, **kw)


@compiles(json_array_of, "duckdb")
def _json_array_of_duckdb(element, compiler, **kw):
    [value] = element.arguments()
    value_sql = _render(compiler, value, **kw)
    return f"CAST(to_json(list({value_sql} ORDER BY {value_sql})) AS VARCHAR)"


@compiles(julian_day, "duckdb")
def _julian_day_duckdb(element, compiler, **kw):
    [value] = element.arguments()
    return f"(epoch_ms(TRY_CAST({_render(compiler, value, **kw)} AS TIMESTAMPTZ)) / 86400000.0 + 2440587.5)"


@compiles(day_of, "duckdb")
def _day_of_duckdb(element, compiler, **kw):
    [value] = element.arguments()
    return (f"strftime(DATE '1970-01-01' + CAST(floor({_render(compiler, value, **kw)} - 2440587.5) AS INTEGER), "
            f"'%Y-%m-%d')")


@compiles(glob, "duckdb")
def _glob_duckdb(element, compiler, **kw):
    text, pattern = element.arguments()
    return f"regexp_matches({_render(compiler, text, **kw)}, '{glob_regex(pattern.name[1:-1])}')"


@compiles(position, "duckdb")
def _position_duckdb(element, compiler, **kw):
    return _render(compiler, func.strpos(*element.arguments()), **kw)


# -- ClickHouse -----------------------------------------------------------------------------------


def _clickhouse_keys(compiler, element, **kw) -> str:
    """`document, 'key', 'key'…`: how ClickHouse's JSON functions take a path."""
    document, _, parts = element.arguments()
    keys = [_render(compiler, literal(part), **kw) for part in parts.value]
    return ", ".join([_render(compiler, document, **kw), *keys])


def _clickhouse_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _clickhouse_real_text(number: str) -> str:
    """A double's text as Python writes it: integral values keep `.0`."""
    return (f"if({number} = trunc({number}) AND abs({number}) < 1e16, concat(toString({number}), '.0'), "
            f"toString({number}))")


@compiles(json_kind, "clickhousedb")
def _json_kind_clickhouse(element, compiler, **kw):
    keys = _clickhouse_keys(compiler, element, **kw)
    kind = f"toString(JSONType({keys}))"
    return (f"multiIf({kind} IN ('Int64', 'UInt64'), 'integer', {kind} = 'Double', 'real', {kind} = 'String', 'text', "
            f"{kind} = 'Bool', if(JSONExtractBool({keys}), 'true', 'false'), {kind} = 'Array', 'array', "
            f"{kind} = 'Object', 'object', 'null')")


@compiles(json_number, "clickhousedb")
def _json_number_clickhouse(element, compiler, **kw):
    return f"JSONExtractFloat({_clickhouse_keys(compiler, element, **kw)})"


@compiles(json_string, "clickhousedb")
def _json_string_clickhouse(element, compiler, **kw):
    return f"JSONExtractString({_clickhouse_keys(compiler, element, **kw)})"


@compiles(json_at, "clickhousedb")
@compiles(json_spelled, "clickhousedb")
def _json_at_clickhouse(element, compiler, **kw):
    keys = _clickhouse_keys(compiler, element, **kw)
    real = _clickhouse_real_text(f"JSONExtractFloat({keys})")
    return f"if(toString(JSONType({keys})) = 'Double', {real}, nullIf(JSONExtractRaw({keys}), ''))"


@compiles(spelled_number, "clickhousedb")
def _spelled_number_clickhouse(element, compiler, **kw):
    [text] = element.arguments()
    text_sql = _render(compiler, text, **kw)
    trimmed = f"replaceRegexpAll({text_sql}, {_clickhouse_literal(JSON_SPACE_AROUND)}, '')"
    return f"if(match({text_sql}, {_clickhouse_literal(JSON_NUMBER)}), toFloat64OrNull({trimmed}), NULL)"


@compiles(to_json, "clickhousedb")
def _to_json_clickhouse(element, compiler, **kw):
    [value] = element.arguments()
    return f"toJSONString({_render(compiler, value, **kw)})"


@compiles(real_to_json, "clickhousedb")
def _real_to_json_clickhouse(element, compiler, **kw):
    [value] = element.arguments()
    value_sql = _render(compiler, value, **kw)
    return f"if(isNull({value_sql}), NULL, {_clickhouse_real_text(value_sql)})"


@compiles(json_array_of, "clickhousedb")
def _json_array_of_clickhouse(element, compiler, **kw):
    [value] = element.arguments()
    return f"toJSONString(arraySort(groupArray({_render(compiler, value, **kw)})))"


@compiles(julian_day, "clickhousedb")
def _julian_day_clickhouse(element, compiler, **kw):
    [value] = element.arguments()
    moment = f"parseDateTime64BestEffortOrNull({_render(compiler, value, **kw)}, 3, 'UTC')"
    return f"(toUnixTimestamp64Milli({moment}) / 86400000 + 2440587.5)"


@compiles(day_of, "clickhousedb")
def _day_of_clickhouse(element, compiler, **kw):
    [value] = element.arguments()
    return f"toString(addDays(toDate32('1970-01-01'), toInt32(floor({_render(compiler, value, **kw)} - 2440587.5))))"


@compiles(glob, "clickhousedb")
def _glob_clickhouse(element, compiler, **kw):
    text, pattern = element.arguments()
    return f"match({_render(compiler, text, **kw)}, {_clickhouse_literal(glob_regex(pattern.name[1:-1]))})"


@compiles(position, "clickhousedb")
def _position_clickhouse(element, compiler, **kw):
    return _render(compiler, func.positionUTF8(*element.arguments()), **kw)


@compiles(text_length, "clickhousedb")
def _text_length_clickhouse(element, compiler, **kw):
    return _render(compiler, func.lengthUTF8(*element.arguments()), **kw)


class nullable(_Function):
    """A value that may be NULL (ClickHouse's `lag` gives NULL before the first row only then)."""

    inherit_cache = True
    name = "nullable"


@compiles(nullable)
def _nullable_default(element, compiler, **kw):
    [value] = element.arguments()
    return _render(compiler, value, **kw)


@compiles(nullable, "clickhousedb")
def _nullable_clickhouse(element, compiler, **kw):
    return _render(compiler, func.toNullable(*element.arguments()), **kw)


class unindexed(_Function):
    """A text column SQLite must not read through an index: grouped by it, SQLite otherwise walks the
    index in its order and reads each row at random, about twice as slow as a scan and a sort."""

    inherit_cache = True
    type = String()
    name = "unindexed"


@compiles(unindexed)
def _unindexed_default(element, compiler, **kw):
    [value] = element.arguments()
    return _render(compiler, value, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element, compiler, **kw):
    [value] = element.arguments()
    return f"CAST({_render(compiler, value, **kw)} AS TEXT)"


@compiles(text_part, "clickhousedb")
def _text_part_clickhouse(element, compiler, **kw):
    return _render(compiler, func.substringUTF8(*element.arguments()), **kw)
