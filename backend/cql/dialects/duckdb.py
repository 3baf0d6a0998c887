"""DuckDB's renderings of the CQL functions (`duckdb`, through duckdb_engine): its JSON extension, reals
as doubles."""

from sqlalchemy import func
from sqlalchemy.ext.compiler import compiles

from backend.cql.dialects.functions import (
    JSON_NUMBER, render, binary, date_text, day_of, glob, glob_regex, json_array_of, json_at, json_kind, json_number,
    json_spelled, json_string, julian_day, parsed_json, position, spelled_number, timestamp_text, to_json,
)


def _duck_path(compiler, element, **kw) -> tuple[str, str]:
    document, path, _ = element.arguments()
    return render(compiler, document, **kw), render(compiler, path, **kw)


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
    text_sql = render(compiler, text, **kw)
    return (f"CASE WHEN regexp_matches({text_sql}, '{JSON_NUMBER}') "
            f"THEN TRY_CAST(trim({text_sql}, ' ' || chr(9) || chr(10) || chr(13)) AS DOUBLE) END")


@compiles(to_json, "duckdb")
def _to_json_duckdb(element, compiler, **kw):
    [value] = element.arguments()
    return f"CAST(to_json({render(compiler, value, **kw)}) AS VARCHAR)"


@compiles(json_array_of, "duckdb")
def _json_array_of_duckdb(element, compiler, **kw):
    [value] = element.arguments()
    value_sql = render(compiler, value, **kw)
    return f"CAST(to_json(list({value_sql} ORDER BY {value_sql})) AS VARCHAR)"


@compiles(julian_day, "duckdb")
def _julian_day_duckdb(element, compiler, **kw):
    [value] = element.arguments()
    return f"(epoch_ms(TRY_CAST({render(compiler, value, **kw)} AS TIMESTAMPTZ)) / 86400000.0 + 2440587.5)"


@compiles(day_of, "duckdb")
def _day_of_duckdb(element, compiler, **kw):
    [value] = element.arguments()
    return (f"strftime(DATE '1970-01-01' + CAST(floor({render(compiler, value, **kw)} - 2440587.5) AS INTEGER), "
            f"'%Y-%m-%d')")


@compiles(glob, "duckdb")
def _glob_duckdb(element, compiler, **kw):
    text, pattern = element.arguments()
    return f"regexp_matches({render(compiler, text, **kw)}, '{glob_regex(pattern.name[1:-1])}')"


@compiles(position, "duckdb")
def _position_duckdb(element, compiler, **kw):
    return render(compiler, func.strpos(*element.arguments()), **kw)


@compiles(parsed_json, "duckdb")
@compiles(binary, "duckdb")
def _as_it_is(element, compiler, **kw):
    [value] = element.arguments()
    return render(compiler, value, **kw)


@compiles(date_text, "duckdb")
def _date_text_duckdb(element, compiler, **kw):
    [value] = element.arguments()
    return f"strftime({render(compiler, value, **kw)}, '%Y-%m-%d')"


@compiles(timestamp_text, "duckdb")
def _timestamp_text_duckdb(element, compiler, **kw):
    [value] = element.arguments()
    return f"strftime({render(compiler, value, **kw)}, '%Y-%m-%dT%H:%M:%SZ')"
