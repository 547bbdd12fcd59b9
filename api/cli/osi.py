"""OSI semantic queries from the command line: `compile --query-file` prints the SQL, `query --query-file` runs it.
Errors carry OSI codes (`error [E_NO_PATH]: ...` on stderr)."""

from __future__ import annotations

from typing import Any

import click

from api.cli.common import EXAMPLE, open_service
from semantic.access import Access
from semantic.execute import Table
from semantic.interop import load_any, read_json
from semantic.interop.osi_query import OsiQuery, compile_query, read_query
from semantic.plan.planner import OutputColumn
from semantic.service import Result, Service, entities_read


def only_query_file(**options: Any) -> None:
    """--query-file is the whole query: any other query option beside it is refused, not silently ignored."""
    given = [name for name, value in options.items() if value not in (None, (), False)]
    if given:
        raise click.UsageError(f"--query-file is the whole query; leave out {', '.join('--' + g for g in given)}")


def osi_compile(model: str | None, query_file: str, dialect: str | None, access: Access) -> str:
    osi = load_any(model or EXAMPLE)
    osi_query = read_query(read_json(query_file, "query file"), osi)
    return compile_query(Service(osi.model, None), osi_query, dialect or osi.model.dialect, access, pretty=True)


def osi_run(model: str | None, query_file: str, warehouse: str | None, access: Access) -> Result:
    osi = load_any(model or EXAMPLE)
    osi_query = read_query(read_json(query_file, "query file"), osi)
    service = open_service(osi.model, warehouse)
    sql = compile_query(service, osi_query, service.dialect, access)
    plan = service.compile(osi_query.query, access=access).plan
    lookup = service.run_sql(sql, service.view(access).fingerprint, entities=entities_read(osi.model, plan))
    return Result(_columns(plan.columns, osi_query), Table.of(lookup.table).rows, sql, lookup.hit, lookup.key,
                  lookup.source)


def _columns(planned: tuple[OutputColumn, ...], osi_query: OsiQuery) -> tuple[OutputColumn, ...]:
    by_name = {c.name: c for c in planned}
    return tuple(OutputColumn(label, label, by_name[ref].type, by_name[ref].kind) for ref, label in osi_query.columns)
