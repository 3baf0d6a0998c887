"""ClickHouse's renderings of the CQL functions (`clickhousedb`, clickhouse-connect's dialect): JSONExtract
over text, UTF-8 aware text functions, reals as doubles."""

from sqlalchemy import func, literal
from sqlalchemy.ext.compiler import compiles

from backend.cql.dialects.functions import (
    JSON_NUMBER, render, binary, date_text, day_of, glob, glob_regex, json_array_of, json_at, json_kind, json_number,
    json_spelled, json_string, julian_day, nullable, parsed_json, position, real_to_json, spelled_number,
    text_length, text_part, timestamp_text, to_json,
)


JSON_SPACE_AROUND = r"^[ \t\n\r]+|[ \t\n\r]+$"


def _clickhouse_keys(compiler, element, **kw) -> str:
    """`document, 'key', 'key'…`: how ClickHouse's JSON functions take a path."""
    document, _, parts = element.arguments()
    keys = [render(compiler, literal(part), **kw) for part in parts.value]
    return ", ".join([render(compiler, document, **kw), *keys])


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
    text_sql = render(compiler, text, **kw)
    trimmed = f"replaceRegexpAll({text_sql}, {_clickhouse_literal(JSON_SPACE_AROUND)}, '')"
    return f"if(match({text_sql}, {_clickhouse_literal(JSON_NUMBER)}), toFloat64OrNull({trimmed}), NULL)"


@compiles(to_json, "clickhousedb")
def _to_json_clickhouse(element, compiler, **kw):
    [value] = element.arguments()
    return f"toJSONString({render(compiler, value, **kw)})"


@compiles(real_to_json, "clickhousedb")
def _real_to_json_clickhouse(element, compiler, **kw):
    [value] = element.arguments()
    value_sql = render(compiler, value, **kw)
    return f"if(isNull({value_sql}), NULL, {_clickhouse_real_text(value_sql)})"


@compiles(json_array_of, "clickhousedb")
def _json_array_of_clickhouse(element, compiler, **kw):
    [value] = element.arguments()
    return f"toJSONString(arraySort(groupArray({render(compiler, value, **kw)})))"


@compiles(julian_day, "clickhousedb")
def _julian_day_clickhouse(element, compiler, **kw):
    [value] = element.arguments()
    moment = f"parseDateTime64BestEffortOrNull({render(compiler, value, **kw)}, 3, 'UTC')"
    return f"(toUnixTimestamp64Milli({moment}) / 86400000 + 2440587.5)"


@compiles(day_of, "clickhousedb")
def _day_of_clickhouse(element, compiler, **kw):
    [value] = element.arguments()
    return f"toString(addDays(toDate32('1970-01-01'), toInt32(floor({render(compiler, value, **kw)} - 2440587.5))))"


@compiles(glob, "clickhousedb")
def _glob_clickhouse(element, compiler, **kw):
    text, pattern = element.arguments()
    return f"match({render(compiler, text, **kw)}, {_clickhouse_literal(glob_regex(pattern.name[1:-1]))})"


@compiles(position, "clickhousedb")
def _position_clickhouse(element, compiler, **kw):
    return render(compiler, func.positionUTF8(*element.arguments()), **kw)


@compiles(text_length, "clickhousedb")
def _text_length_clickhouse(element, compiler, **kw):
    return render(compiler, func.lengthUTF8(*element.arguments()), **kw)


@compiles(nullable, "clickhousedb")
def _nullable_clickhouse(element, compiler, **kw):
    return render(compiler, func.toNullable(*element.arguments()), **kw)


@compiles(text_part, "clickhousedb")
def _text_part_clickhouse(element, compiler, **kw):
    return render(compiler, func.substringUTF8(*element.arguments()), **kw)


@compiles(parsed_json, "clickhousedb")
@compiles(binary, "clickhousedb")
def _as_it_is(element, compiler, **kw):
    [value] = element.arguments()
    return render(compiler, value, **kw)


@compiles(date_text, "clickhousedb")
def _date_text_clickhouse(element, compiler, **kw):
    [value] = element.arguments()
    return f"formatDateTime({render(compiler, value, **kw)}, '%Y-%m-%d')"


@compiles(timestamp_text, "clickhousedb")
def _timestamp_text_clickhouse(element, compiler, **kw):
    [value] = element.arguments()
    return f"formatDateTime({render(compiler, value, **kw)}, '%Y-%m-%dT%H:%i:%SZ')"
