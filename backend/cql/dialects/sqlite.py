"""SQLite's renderings of the CQL functions: JSON1 (`$."a"."b"` paths over JSON text), `julianday`, GLOB."""

from sqlalchemy import case, func, literal
from sqlalchemy.ext.compiler import compiles

from backend.cql.dialects.functions import (
    render, binary, day_of, glob, json_array_of, json_at, json_kind, json_number, json_spelled, json_string,
    julian_day, parsed_json, position, spelled_number, to_json, unindexed,
)


@compiles(json_kind, "sqlite")
def _json_kind_sqlite(element, compiler, **kw):
    document, path, _ = element.arguments()
    return render(compiler, func.json_type(document, path), **kw)


@compiles(json_number, "sqlite")
def _json_number_sqlite(element, compiler, **kw):
    document, path, _ = element.arguments()
    return render(compiler, func.json_extract(document, path), **kw)


@compiles(json_string, "sqlite")
def _json_string_sqlite(element, compiler, **kw):
    document, path, _ = element.arguments()
    return render(compiler, func.json_extract(document, path), **kw)


@compiles(json_at, "sqlite")
def _json_at_sqlite(element, compiler, **kw):
    document, path, _ = element.arguments()
    return render(compiler, document.op("->")(path), **kw)


@compiles(json_spelled, "sqlite")
def _json_spelled_sqlite(element, compiler, **kw):
    document, path, _ = element.arguments()
    return render(compiler, literal("").op("||")(document.op("->")(path)), **kw)


@compiles(spelled_number, "sqlite")
def _spelled_number_sqlite(element, compiler, **kw):
    [text] = element.arguments()
    number = func.json_extract(text, "$")
    kinds = case({"integer": number, "real": number}, value=func.json_type(text))
    return render(compiler, case((func.json_valid(text) == 1, kinds)), **kw)


@compiles(to_json, "sqlite")
def _to_json_sqlite(element, compiler, **kw):
    [value] = element.arguments()
    return render(compiler, func.nullif(func.json_quote(value), "null"), **kw)


@compiles(parsed_json, "sqlite")
def _parsed_json_sqlite(element, compiler, **kw):
    [value] = element.arguments()
    return render(compiler, func.json(value), **kw)


@compiles(json_array_of, "sqlite")
def _json_array_of_sqlite(element, compiler, **kw):
    [value] = element.arguments()
    return render(compiler, func.json_group_array(value), **kw)


@compiles(julian_day, "sqlite")
def _julian_day_sqlite(element, compiler, **kw):
    return render(compiler, func.julianday(*element.arguments()), **kw)


@compiles(day_of, "sqlite")
def _day_of_sqlite(element, compiler, **kw):
    return render(compiler, func.date(*element.arguments()), **kw)


@compiles(glob, "sqlite")
def _glob_sqlite(element, compiler, **kw):
    text, pattern = element.arguments()
    return f"({render(compiler, text, **kw)} GLOB {pattern.name})"


@compiles(position, "sqlite")
def _position_sqlite(element, compiler, **kw):
    return render(compiler, func.instr(*element.arguments()), **kw)


@compiles(binary, "sqlite")
def _binary_sqlite(element, compiler, **kw):
    [value] = element.arguments()
    return render(compiler, value, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element, compiler, **kw):
    [value] = element.arguments()
    return f"CAST({render(compiler, value, **kw)} AS TEXT)"
