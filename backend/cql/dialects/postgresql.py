"""PostgreSQL's renderings of the CQL functions: jsonb paths as text arrays, regular expressions for
GLOB, and `segment_audiences_julianday` (created by the schema migration from `POSTGRES_JULIANDAY`)."""

from sqlalchemy import func
from sqlalchemy.ext.compiler import compiles

from backend.cql.dialects.functions import (
    JSON_NUMBER, render, binary, date_text, day_of, glob, glob_regex, json_array_of, json_at, json_kind, json_number,
    json_spelled, json_string, julian_day, parsed_json, position, spelled_number, timestamp_text, to_json,
)


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


def _jsonb_at(compiler, element, **kw) -> str:
    """`(CAST(document AS jsonb) #> path)` for an element whose arguments are (document, path, path[])."""
    document, _, parts = element.arguments()
    return f"(CAST({render(compiler, document, **kw)} AS jsonb) #> {render(compiler, parts, **kw)})"


@compiles(json_kind, "postgresql")
def _json_kind_postgresql(element, compiler, **kw):
    value = _jsonb_at(compiler, element, **kw)
    return (f"CASE jsonb_typeof({value}) WHEN 'number' THEN CASE WHEN ({value})::text ~ '^-?[0-9]+$' "
            f"THEN 'integer' ELSE 'real' END WHEN 'string' THEN 'text' WHEN 'boolean' THEN ({value})::text "
            f"ELSE jsonb_typeof({value}) END")


@compiles(json_number, "postgresql")
def _json_number_postgresql(element, compiler, **kw):
    return f"(({_jsonb_at(compiler, element, **kw)}) #>> '{{}}')::numeric"


@compiles(json_string, "postgresql")
def _json_string_postgresql(element, compiler, **kw):
    return f"(({_jsonb_at(compiler, element, **kw)}) #>> '{{}}')"


@compiles(json_at, "postgresql")
def _json_at_postgresql(element, compiler, **kw):
    return f"({_jsonb_at(compiler, element, **kw)})::text"


@compiles(json_spelled, "postgresql")
def _json_spelled_postgresql(element, compiler, **kw):
    return f"({_jsonb_at(compiler, element, **kw)})::text"


@compiles(spelled_number, "postgresql")
def _spelled_number_postgresql(element, compiler, **kw):
    [text] = element.arguments()
    text_sql = render(compiler, text, **kw)
    return f"CASE WHEN {text_sql} ~ '{JSON_NUMBER}' THEN CAST({text_sql} AS numeric) END"


@compiles(to_json, "postgresql")
def _to_json_postgresql(element, compiler, **kw):
    [value] = element.arguments()
    return f"to_jsonb({render(compiler, value, **kw)})::text"


@compiles(parsed_json, "postgresql")
def _parsed_json_postgresql(element, compiler, **kw):
    [value] = element.arguments()
    return f"CAST(CAST({render(compiler, value, **kw)} AS jsonb) AS text)"


@compiles(json_array_of, "postgresql")
def _json_array_of_postgresql(element, compiler, **kw):
    [value] = element.arguments()
    value_sql = render(compiler, value, **kw)
    return f"COALESCE(jsonb_agg({value_sql} ORDER BY {value_sql} COLLATE \"C\"), '[]'::jsonb)::text"


@compiles(julian_day, "postgresql")
def _julian_day_postgresql(element, compiler, **kw):
    [value] = element.arguments()
    return f"segment_audiences_julianday({render(compiler, value, **kw)})"


@compiles(day_of, "postgresql")
def _day_of_postgresql(element, compiler, **kw):
    [value] = element.arguments()
    return (f"to_char(to_timestamp(({render(compiler, value, **kw)} - 2440587.5) * 86400) AT TIME ZONE 'UTC', "
            f"'YYYY-MM-DD')")


@compiles(glob, "postgresql")
def _glob_postgresql(element, compiler, **kw):
    text, pattern = element.arguments()
    return f"({render(compiler, text, **kw)} ~ '{glob_regex(pattern.name[1:-1])}')"


@compiles(position, "postgresql")
def _position_postgresql(element, compiler, **kw):
    return render(compiler, func.strpos(*element.arguments()), **kw)


@compiles(binary, "postgresql")
def _binary_postgresql(element, compiler, **kw):
    [value] = element.arguments()
    return f'({render(compiler, value, **kw)} COLLATE "C")'


@compiles(date_text, "postgresql")
def _date_text_postgresql(element, compiler, **kw):
    [value] = element.arguments()
    return f"to_char({render(compiler, value, **kw)}, 'YYYY-MM-DD')"


@compiles(timestamp_text, "postgresql")
def _timestamp_text_postgresql(element, compiler, **kw):
    [value] = element.arguments()
    return f"to_char({render(compiler, value, **kw)}, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
