"""The `segment-audiences` command: serve the MCP server (with the Tracking and Profile APIs), import
events from files, manage spaces and destinations, load the warehouse's entity tables and set a
space's Data Graph.

Configuration comes from flags, falling back to environment variables: `--db` / SEGMENT_AUDIENCES_DB
(a SQLAlchemy URL; default a SQLite file in the user data directory), `--token` /
SEGMENT_AUDIENCES_TOKEN, `--http-port` / SEGMENT_AUDIENCES_HTTP_PORT, `--actor` /
SEGMENT_AUDIENCES_ACTOR (recorded as createdBy/updatedBy), SEGMENT_AUDIENCES_PUBLIC_URL (the base of
download links, when the server is reached through another address; default its own HTTP address,
or file URLs under stdio), SEGMENT_AUDIENCES_DATA_DIR (where download files go; default beside a
SQLite database), `--analytics` / SEGMENT_AUDIENCES_ANALYTICS (where full runs compute: `duckdb`, the
default, a DuckDB file beside a SQLite database; `duckdb:PATH`; `clickhouse://…`; or `none`, the
operational database; see `store.analytic.store`). The background loop reads
SEGMENT_AUDIENCES_BATCH_HOURS (batch cadence, default 8), SEGMENT_AUDIENCES_SWEEP_MINUTES (window
sweeps, default 15) and SEGMENT_AUDIENCES_LEASE_SECONDS (delivery leases);
a read-only server runs no loop.
"""

import argparse
import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path

from sqlalchemy import make_url

from server.importer import import_file
from server.stopping import GRACE_SECONDS, Stopper
from server.role_process import stop_with_parent, yield_cpu
from server.worker import ROLES, SplitLoops, Worker, start_loops
from store.analytic.store import open_analytic_store
from store.catalog import data_graphs, destination_instances, spaces
from store.db.errors import DomainError, InputValidation
from store.db.pagination import PageRequest
from store.db.schema import SchemaTooNew
from store.db.store import DEFAULT_ACTOR, Store
from store.delivery import destination_catalog, outbox
from store.ingest import schema_summary
from store.warehouse.location import warehouse_of
from tools import TOOLSETS, UnknownToolset, toolsets_from

DEFAULT_PORTS = {"sse": 8000, "streamable-http": 8000}
DEFAULT_API_PORT = 8000


def configure_logging() -> None:
    """INFO records to stderr, but not a line per request the HTTP client makes: the delivery process
    sends hundreds a second (formatting them took CPU from the sending), and a destination's URL may
    carry a secret in its query string. What became of each request is in its attempt record."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for client in ("httpx", "httpcore"):
        logging.getLogger(client).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging()
    if args.run is _bundle:
        return _bundle(args)
    try:
        store = Store(args.db, actor=args.actor, analytics=getattr(args, "analytics", None))
        schema_summary.catch_up(store)
        return args.run(store, args)
    except DomainError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    except SchemaTooNew as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _serve(store: Store, args: argparse.Namespace) -> int:
    from server.app import build_server
    from server.http import is_loopback, serve_http
    from server.web import api_app

    log = logging.getLogger("segment_audiences")
    log.info("database: %s", _database(store))
    created = spaces.ensure_default_space(store)
    if created is not None:
        _announce_default_space(store, created)
    mcp_port = args.port or DEFAULT_PORTS.get(args.transport)
    shared = args.transport != "stdio" and args.http_port in (None, mcp_port)
    api_port = None
    if not shared and args.http_port != "off":
        api_port = _serve_api(log, store, args)
        if api_port is None and args.http_port is not None:
            return 2
    store.analytics = open_analytic_store(store, args.analytics)
    server = build_server(store, read_only=args.read_only, toolsets=args.toolsets)
    _freeze_what_lasts()
    worker = None if args.read_only or args.no_worker else start_loops(store)
    stopper = Stopper(lambda: _stop(store, worker)).install()
    store.download_base_url = os.environ.get("SEGMENT_AUDIENCES_PUBLIC_URL") or (
        f"http://{args.host}:{mcp_port if shared else api_port}" if shared or api_port else None)
    try:
        if args.transport == "stdio":
            log.info("MCP on stdio")
            server.run("stdio")
        else:
            path = "/sse" if args.transport == "sse" else "/mcp"
            log.info("MCP (%s) on http://%s:%d%s", args.transport, args.host, mcp_port, path)
            if shared:
                log.info("Tracking and Profile APIs on http://%s:%d/v1/ (the MCP port)", args.host, mcp_port)
            serve_http(server, args.transport, args.host, mcp_port, args.token,
                       api=api_app(store, args.token, is_loopback(args.host)) if shared else None)
    finally:
        stopper.stop()
    return 0


def _stop(store: Store, worker: Worker | SplitLoops | None) -> None:
    """Stop the background loops (if any) within the grace period, then close the databases."""
    if worker is not None:
        worker.stop(GRACE_SECONDS)
    if store.analytics is not None:
        store.analytics.close()
    store.close()


def _serve_api(log: logging.Logger, store: Store, args: argparse.Namespace) -> int | None:
    """Start the Tracking and Profile APIs on their own port: `--http-port` if given (failing to get
    it is an error), else 8000, and if 8000 is taken, none (MCP still starts; the log says why)."""
    from server.http import is_loopback
    from server.web import serve_api_in_background

    port = DEFAULT_API_PORT if args.http_port is None else args.http_port
    try:
        bound = serve_api_in_background(store, args.host, port, args.token, is_loopback(args.host))
    except OSError as error:
        if args.http_port is not None:
            print(f"error: cannot serve the Tracking and Profile APIs on {args.host}:{port}: {error}", file=sys.stderr)
            return None
        log.warning("Tracking and Profile APIs are off: %s:%d is not available (%s); pass --http-port N, or 0 for "
                    "any free port", args.host, port, error)
        return None
    log.info("Tracking and Profile APIs on http://%s:%d/v1/", args.host, bound)
    return bound


def _announce_default_space(store: Store, created: spaces.NewSpace) -> None:
    """First start: the Default space's id and keys (the access token is shown this once) and where
    the database is, as a block of its own on stderr, apart from the log lines."""
    print(f"\nfirst start: created space {created.space.name} ({created.space.id})\n"
          f"  database: {_database(store)}\n"
          f"  write key (Tracking API Basic user name): {created.write_key}\n"
          f"  Profile API access token (shown once; `segment-audiences spaces token {created.space.id}` issues a "
          f"new one): {created.access_token}\n", file=sys.stderr, flush=True)


def _database(store: Store) -> str:
    """The database as a person would name it: a SQLite file's path, or the URL without its password."""
    url = make_url(store.url)
    if url.get_backend_name() == "sqlite" and url.database:
        return url.database
    return url.render_as_string(hide_password=True)


def _freeze_what_lasts() -> None:
    """Before a long-running command starts its work: leave the objects made so far (modules, the
    schema, the open store, the apps) out of the garbage collector's full collections. They last as
    long as the process, and walking them again in every full collection took much of `serve`'s and
    its processor's time (the processor stores about a fifth more events a second with them frozen;
    see the README). What is garbage already is collected first, not frozen with them."""
    gc.collect()
    gc.freeze()


def _worker(store: Store, args: argparse.Namespace) -> int:
    store.analytics = open_analytic_store(store, args.analytics) if "compute" in args.only else None
    yield_cpu(args.only)
    _freeze_what_lasts()
    worker = start_loops(store, args.only)
    Stopper(lambda: _stop(store, worker)).install()
    stop_with_parent(lambda: os.kill(os.getpid(), signal.SIGTERM))
    worker.wait()
    return 0


def _ingest(store: Store, args: argparse.Namespace) -> int:
    _freeze_what_lasts()
    report = import_file(store, args.space, args.file, batch_size=args.batch_size, progress=sys.stderr.isatty())
    print(f"stored {report.stored}, duplicates {report.duplicates}, dropped by filters {report.dropped}, "
          f"rejected {len(report.rejected)}")
    for line, reason in report.rejected[:20]:
        print(f"  line {line}: {reason}", file=sys.stderr)
    return 1 if report.rejected else 0


def _spaces_create(store: Store, args: argparse.Namespace) -> int:
    new = spaces.create_space(store, args.name)
    print(f"id:           {new.space.id}\nslug:         {new.space.slug}\nwrite key:    {new.write_key}")
    print(f"access token: {new.access_token}   (shown once; the Profile API's user name)")
    return 0


def _spaces_list(store: Store, args: argparse.Namespace) -> int:
    spaces.ensure_default_space(store)
    for space in spaces.list_spaces(store, PageRequest(count=1000)).items:
        print(f"{space.id}\t{space.slug}\t{space.name}\twrite key {space.write_key}")
    return 0


def _spaces_token(store: Store, args: argparse.Namespace) -> int:
    print(spaces.new_access_token(store, args.space))
    return 0


def _destinations_add(store: Store, args: argparse.Namespace) -> int:
    entry = destination_instances.require_entry(args.type, field="--type")
    settings = _settings(args, entry)
    destination = destination_instances.add_destination(store, args.space, args.type, args.name, settings)
    print(destination.id)
    return 0


def _destinations_update(store: Store, args: argparse.Namespace) -> int:
    current = destination_instances.get_destination(store, args.space, args.id)
    settings = _settings(args, destination_catalog.BY_SLUG[current.slug]) if args.setting or args.settings_json else None
    enabled = {"on": True, "off": False}.get(args.enabled or "")
    destination_instances.update_destination(store, args.space, args.id, name=args.name, enabled=enabled,
                                             settings=settings)
    print(args.id)
    return 0


def _destinations_remove(store: Store, args: argparse.Namespace) -> int:
    destination_instances.remove_destination(store, args.space, args.id)
    print(f"removed {args.id}")
    return 0


def _destinations_list(store: Store, args: argparse.Namespace) -> int:
    page = destination_instances.list_destinations(store, args.space, PageRequest(count=1000))
    for destination in page.items:
        state = "enabled" if destination.enabled else "disabled"
        print(f"{destination.id}\t{destination.slug}\t{destination.name}\t{state}")
    return 0


def _settings(args: argparse.Namespace, entry: destination_catalog.CatalogEntry) -> dict[str, object]:
    """`--settings-json` first, then each `--setting key=value` typed by the catalog field it names."""
    settings: dict[str, object] = {}
    if args.settings_json:
        try:
            settings.update(json.loads(args.settings_json))
        except (ValueError, TypeError) as error:
            raise InputValidation(f"--settings-json is not a JSON object: {error}", field="--settings-json") from error
    fields = {field.name: field for field in entry.settings}
    for item in args.setting:
        name, separator, text = item.partition("=")
        if not separator:
            raise InputValidation(f"--setting takes key=value, not {item!r}", field="--setting")
        field = fields.get(name)
        if field is None:
            raise InputValidation(f"Unknown setting '{name}'; {entry.slug} takes: {', '.join(fields) or 'none'}.",
                                  field="--setting")
        settings[name] = typed_setting(field, text)
    return settings


def typed_setting(field: destination_catalog.SettingField, text: str) -> object:
    """A `--setting` value as its catalog field's type: text stays text (a JSON string in double
    quotes is unquoted, so "12345" or a value with an `=` can be written either way), true/false
    for booleans, digits for integers, JSON for objects."""
    if field.type == "string":
        if len(text) >= 2 and text[0] == text[-1] == '"':
            try:
                return json.loads(text)
            except ValueError:
                return text
        return text
    if field.type == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if field.type == "integer" and text.lstrip("-").isdigit():
        return int(text)
    if field.type == "object":
        try:
            return json.loads(text)
        except ValueError:
            pass
    raise InputValidation(f"{field.name} takes a {field.type}, not {text!r}.", field="--setting")


def _dead_letters(store: Store, args: argparse.Namespace) -> int:
    for row in outbox.dead_letters(store, args.space, args.target, args.limit):
        print(f"{row.id}\t{row.target_id}\t{row.profile_id}\t{row.transition}\t{row.message_id}\t"
              f"attempts {row.attempts}\t{row.last_error or ''}")
    return 0


def _redrive(store: Store, args: argparse.Namespace) -> int:
    if not (args.id or args.target or args.space or args.all):
        print("error: say which dead letters to re-drive: --id, --target, --space or --all", file=sys.stderr)
        return 2
    count = outbox.redrive(store, ids=args.id, target_id=args.target, space_id=args.space)
    print(f"re-queued {count} dead-lettered message(s)")
    return 0


def _warehouse_store(store: Store, args: argparse.Namespace) -> None:
    """ClickHouse's warehouse is read through the analytic store, opened for the command."""
    if store.analytics_option.startswith("clickhouse"):
        store.analytics = open_analytic_store(store, store.analytics_option)


def _warehouse_load(store: Store, args: argparse.Namespace) -> int:
    _warehouse_store(store, args)
    info = warehouse_of(store).load(args.table, args.file, append=args.append)
    print(f"{info.name}: {info.rows} rows, {len(info.columns)} columns "
          f"({', '.join(f'{c.name} {c.type}' for c in info.columns)})")
    return 0


def _warehouse_tables(store: Store, args: argparse.Namespace) -> int:
    _warehouse_store(store, args)
    for info in warehouse_of(store).tables():
        print(f"{info.name}	{info.rows} rows	{', '.join(f'{c.name} {c.type}' for c in info.columns)}")
    return 0


def _warehouse_drop(store: Store, args: argparse.Namespace) -> int:
    _warehouse_store(store, args)
    warehouse_of(store).drop(args.table)
    print(f"dropped {args.table}")
    return 0


def _data_graph_set(store: Store, args: argparse.Namespace) -> int:
    _warehouse_store(store, args)
    text = Path(args.file).read_text(encoding="utf-8")
    if args.file.lower().endswith(".json"):
        try:
            document = json.loads(text)
        except ValueError as error:
            raise InputValidation(f"{args.file} is not JSON: {error}", field="file") from error
        updated = data_graphs.update_data_graph(store, args.space, config_json=document)
    else:
        updated = data_graphs.update_data_graph(store, args.space, config=text)
    print(f"data graph of {args.space}: version {updated.view.version}")
    for warning in updated.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _data_graph_show(store: Store, args: argparse.Namespace) -> int:
    _warehouse_store(store, args)
    view = data_graphs.get_data_graph(store, args.space)
    print(f"# version {view.version}, {view.config_format}, updated {view.updated_at:%Y-%m-%dT%H:%M:%SZ} by "
          f"{view.updated_by}")
    for node, parents in view.graph.nodes():
        entity = view.graph.entities[node.related_entity]
        table = view.tables.get(entity.table_ref)
        rows = "missing" if table is None else f"{table.rows} rows"
        print(f"# {'  ' * len(parents)}{node.slug} -> {entity.slug} ({entity.table_ref}, {rows})")
    print(view.config)
    return 0


def http_port(value: str) -> int | str:
    """`--http-port`: a port number (0 for any free port) or `off`."""
    if value.strip().lower() == "off":
        return "off"
    if value.strip().isdigit() and int(value) <= 65_535:
        return int(value)
    raise argparse.ArgumentTypeError(f"a port number, 0 for any free port, or off; not {value!r}")


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """`--db` and `--actor`, accepted before the command (with their defaults) and after it."""
    parser.add_argument("--db", default=os.environ.get("SEGMENT_AUDIENCES_DB") if defaults else argparse.SUPPRESS,
                        help="database: a SQLAlchemy URL or a SQLite file path")
    parser.add_argument("--actor", default=os.environ.get("SEGMENT_AUDIENCES_ACTOR", DEFAULT_ACTOR) if defaults
                        else argparse.SUPPRESS, help="recorded as createdBy/updatedBy")


def _analytics_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--analytics", default=os.environ.get("SEGMENT_AUDIENCES_ANALYTICS", "duckdb"),
                        metavar="ENGINE", help="where full runs compute: duckdb (default: a file beside a SQLite "
                        "database), duckdb:PATH, clickhouse://user:password@host:8123/db, or none")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segment-audiences", description=" ".join(__doc__.split("\n\n")[0].split()))
    _global_options(parser, defaults=True)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the MCP server")
    serve.add_argument("--transport", choices=("stdio", "sse", "streamable-http"), default="stdio")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default 8000")
    serve.add_argument("--token", default=os.environ.get("SEGMENT_AUDIENCES_TOKEN"), help="bearer token for HTTP")
    serve.add_argument("--read-only", action="store_true", help="register only the read tools")
    serve.add_argument("--no-worker", action="store_true",
                       help="leave the background loops (realtime recomputes, runs, previews, delivery) to "
                       "`worker` processes")
    serve.add_argument("--toolsets", type=_toolsets, default=os.environ.get("SEGMENT_AUDIENCES_TOOLSETS"),
                       metavar="A,B", help=f"offer only these tool groups: all (default), {', '.join(TOOLSETS)}")
    serve.add_argument(
        "--http-port", type=http_port, default=_env_http_port(),
        help="port of the Tracking and Profile APIs (/v1/…), 0 for any free port, or off; by default they "
        "share the MCP port under sse/streamable-http and take 8000 under stdio (if it is free)",
    )
    _analytics_option(serve)
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="run only the background loops (the processor of what the Tracking "
                                 "API logged, realtime recomputes, cadences, sweeps, schedules, previews, delivery)")
    worker.add_argument("--only", type=_roles, default=ROLES, metavar="ROLE,ROLE",
                        help=f"run only these roles: {', '.join(ROLES)} (default: all)")
    _analytics_option(worker)
    worker.set_defaults(run=_worker)

    ingest = commands.add_parser("ingest", help="import Segment-spec messages from a JSON-lines file")
    ingest.add_argument("--space", required=True, help="space id (spa_…)")
    ingest.add_argument("--batch-size", type=int, default=1000, help="messages per transaction")
    ingest.add_argument("file", help="one message per line, as sent to the Tracking API; '-' for stdin")
    ingest.set_defaults(run=_ingest)

    space_commands = commands.add_parser("spaces", help="create and list spaces").add_subparsers(required=True)
    create = space_commands.add_parser("create", help="create a space and print its keys")
    create.add_argument("name")
    create.set_defaults(run=_spaces_create)
    spaces_list = space_commands.add_parser("list", help="list spaces")
    spaces_list.set_defaults(run=_spaces_list)
    token = space_commands.add_parser("token", help="issue a new Profile API access token (the old one stops working)")
    token.add_argument("space", help="space id (spa_…)")
    token.set_defaults(run=_spaces_token)

    destination_commands = commands.add_parser(
        "destinations", help="add, list, update and remove destination instances").add_subparsers(required=True)
    add = destination_commands.add_parser("add", help="add a destination instance to a space")
    add.add_argument("--type", required=True, help="catalog slug, e.g. webhooks-actions, pendula, moengage")
    add.add_argument("--name", required=True)
    add.set_defaults(run=_destinations_add)
    update = destination_commands.add_parser("update", help="change a destination instance's name, settings or state")
    update.add_argument("id", help="destination id (dst_…)")
    update.add_argument("--name")
    update.add_argument("--enabled", choices=("on", "off"))
    update.set_defaults(run=_destinations_update)
    for command in (add, update):
        command.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                             help="one setting, typed by the catalog (repeatable)")
        command.add_argument("--settings-json", metavar="JSON", help="several settings as one JSON object")
    removing = destination_commands.add_parser("remove", help="remove a destination instance no audience uses")
    removing.add_argument("id", help="destination id (dst_…)")
    removing.set_defaults(run=_destinations_remove)
    listing = destination_commands.add_parser("list", help="list a space's destination instances")
    listing.set_defaults(run=_destinations_list)
    for command in (add, update, removing, listing):
        command.add_argument("--space", required=True)

    delivery_commands = commands.add_parser("deliveries", help="inspect and re-drive dead-lettered deliveries").add_subparsers(required=True)
    dead = delivery_commands.add_parser("dead-letters", help="list messages given up on, with their last error")
    redrive = delivery_commands.add_parser("redrive", help="queue dead-lettered messages again with a fresh retry window")
    for command in (dead, redrive):
        command.add_argument("--space", help="only this space (spa_…)")
        command.add_argument("--target", help="only this activation (act_…) or connection (ii_…)")
    dead.add_argument("--limit", type=int, default=100)
    dead.set_defaults(run=_dead_letters)
    redrive.add_argument("--id", type=int, action="append", default=[], help="an outbox row id (repeatable)")
    redrive.add_argument("--all", action="store_true", help="every dead-lettered message")
    redrive.set_defaults(run=_redrive)
    warehouse = commands.add_parser("warehouse", help="load, list and drop the entity tables LINKED audiences read "
                                    "(the embedded warehouse)").add_subparsers(required=True)
    load = warehouse.add_parser("load", help="load a CSV, Parquet or JSON-lines file into a table (types inferred)")
    load.add_argument("--table", required=True, help="table name (letters, digits, _): the table_ref to name it by")
    load.add_argument("--append", action="store_true", help="add the rows to the table (default: replace it)")
    load.add_argument("--replace", dest="append", action="store_false", help="replace the table (the default)")
    load.add_argument("file", help=".csv, .tsv, .parquet, .jsonl, .ndjson or .json")
    load.set_defaults(run=_warehouse_load)
    tables = warehouse.add_parser("tables", help="list the tables with their columns, types and row counts")
    tables.set_defaults(run=_warehouse_tables)
    drop = warehouse.add_parser("drop", help="drop a table")
    drop.add_argument("--table", required=True)
    drop.set_defaults(run=_warehouse_drop)
    graph = commands.add_parser("data-graph", help="set and show a space's Data Graph").add_subparsers(required=True)
    graph_set = graph.add_parser("set", help="set the Data Graph from a file: HCL, or its JSON form (.json)")
    graph_set.add_argument("file")
    graph_set.set_defaults(run=_data_graph_set)
    graph_show = graph.add_parser("show", help="print the Data Graph: its relationships, then its config")
    graph_show.set_defaults(run=_data_graph_show)
    for command in (graph_set, graph_show):
        command.add_argument("--space", required=True, help="space id (spa_…)")
    for command in (load, tables, drop, graph_set, graph_show):
        _analytics_option(command)
    bundle = commands.add_parser("bundle", help="build the MCP Bundle (.mcpb) a host installs, from this checkout")
    bundle.add_argument("--output", required=True, type=Path, help="the .mcpb file to write")
    bundle.set_defaults(run=_bundle)
    for leaf in (serve, worker, ingest, create, spaces_list, token, add, update, removing, listing, dead, redrive,
                 load, tables, drop, graph_set, graph_show):
        _global_options(leaf, defaults=False)
    return parser


def _bundle(args: argparse.Namespace) -> int:
    """Needs no database: it packs the checkout."""
    from server import bundle

    try:
        written = bundle.build(args.output)
    except bundle.BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{written} ({written.stat().st_size / 1_048_576:.1f} MB)")
    return 0


def _toolsets(value: str) -> set[str] | None:
    try:
        return toolsets_from(value)
    except UnknownToolset as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _roles(value: str) -> tuple[str, ...]:
    roles = tuple(dict.fromkeys(role.strip() for role in value.split(",") if role.strip()))
    unknown = [role for role in roles if role not in ROLES]
    if unknown or not roles:
        raise argparse.ArgumentTypeError(f"roles are {', '.join(ROLES)}, not {value!r}")
    return roles


def _env_http_port() -> int | str | None:
    value = os.environ.get("SEGMENT_AUDIENCES_HTTP_PORT")
    return http_port(value) if value else None
