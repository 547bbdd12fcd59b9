"""Model -> Strawberry schema. The selection set is the query: selected dimension fields group, selected metric
fields aggregate, nested fields follow relationships. Resolvers only turn GraphQL into a SemanticQuery; the
`Service` does the rest, so every consumer shares one path and one cache.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Annotated, Any, cast

import anyio.to_thread
import strawberry
from graphql import GraphQLError, GraphQLFloat, get_named_type
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionResult

from api.errors import to_graphql
from api.limits import extensions as document_limits
from api.names import camel, pascal
from api.observe import count_error
from api.scalars import SCALARS, Dialect, Fill, Long, NameValues, Temporal, accept_old_spellings, scalar_of
from api.shaping import FastExecutor, Field, Rows, collect, leaves, plain_objects
from semantic import settings
from semantic.access import ANONYMOUS, Access
from semantic.errors import ForbiddenError, QueryError
from semantic.features.request import FeatureRequest
from semantic.model import GRAINS, Dimension, Entity, Feature, Metric, Model
from semantic.online import OnlineStore
from semantic.plan.paths import all_paths, picking
from semantic.query import Filter, Order, SemanticQuery
from semantic.service import Result, Service
from semantic.types import ValueType, dimension_value_type, feature_value_type, metric_value_type


@strawberry.enum(description="Time grains; weeks start on Monday.")
class Grain(enum.Enum):
    SECOND = strawberry.enum_value("second", description="Whole seconds.")
    MINUTE = strawberry.enum_value("minute", description="Whole minutes.")
    HOUR = strawberry.enum_value("hour", description="Whole hours.")
    DAY = strawberry.enum_value("day", description="Calendar days, in the query's time zone.")
    WEEK = strawberry.enum_value("week", description="ISO weeks, Monday to Sunday; named by their Monday.")
    MONTH = strawberry.enum_value("month", description="Calendar months; named by their first day.")
    QUARTER = strawberry.enum_value("quarter", description="Calendar quarters; named by their first day.")
    YEAR = strawberry.enum_value("year", description="Calendar years; named by 1 January.")


@strawberry.enum(description="Sort direction; nulls sort last.")
class Direction(enum.Enum):
    ASC = strawberry.enum_value("asc", description="Smallest first.")
    DESC = strawberry.enum_value("desc", description="Largest first.")


_OPS = {"eq": "Equal to this value.", "neq": "Not equal to this value (nulls never match).",
        "gt": "Greater than this value.", "gte": "Greater than or equal to this value.",
        "lt": "Less than this value.", "lte": "Less than or equal to this value.",
        "in": "Equal to one of these values.", "not_in": "Equal to none of these values (nulls never match).",
        "like": "Matches this SQL LIKE pattern (`%` any run of characters, `_` one character).",
        "is_null": "true: only nulls; false: only values that are not null."}


def _filter_input(name: str, scalar: Any, ops: tuple[str, ...], description: str) -> type:
    cls = type(name, (), {"__annotations__": {}})
    for op in ops:
        kind = list[scalar] | None if op in ("in", "not_in") else (bool | None if op == "is_null" else scalar | None)
        cls.__annotations__[f"o_{op}"] = kind  # prefixed: `in` is not a Python name
        setattr(cls, f"o_{op}", strawberry.field(default=None, name=camel(op), description=_OPS[op]))
    return strawberry.input(cls, name=name, description=description)


_ORDERED = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in", "is_null")
FILTERS: dict[str, type] = {
    "string": _filter_input("StringFilter", str, ("eq", "neq", "in", "not_in", "like", "is_null"),
                            "Conditions on a string dimension; all that are set must hold."),
    "number": _filter_input("FloatFilter", float, _ORDERED, "Conditions on a number dimension."),
    "decimal": _filter_input("DecimalFilter", Decimal, _ORDERED, "Conditions on an exact decimal dimension "
                                                                 "(values as numbers or strings of digits)."),
    "integer": _filter_input("IntFilter", int, _ORDERED, "Conditions on a 32-bit integer dimension."),
    "long": _filter_input("LongFilter", Long, _ORDERED, "Conditions on a 64-bit integer dimension."),
    "boolean": _filter_input("BooleanFilter", bool, ("eq", "is_null"), "Conditions on a boolean dimension."),
    "datetime": _filter_input("TimeFilter", datetime, ("eq", "neq", "gt", "gte", "lt", "lte", "is_null"),
                              "Conditions on a time, as ISO 8601 date-times (a date means its midnight); without "
                              "an offset, in the query's time zone (default UTC)."),
    "date": _filter_input("DateFilter", date, ("eq", "neq", "gt", "gte", "lt", "lte", "is_null"),
                          "Conditions on a calendar day (a DATE column), as ISO 8601 dates."),
}


def _filter_of(kind: ValueType) -> type:
    """The filter input of a dimension whose raw values are of `kind`."""
    if kind.type == "integer":
        return FILTERS["integer" if kind.bits == 32 else "long"]
    if kind.type == "number":
        return FILTERS["decimal" if kind.exact else "number"]
    return FILTERS[kind.type]


@strawberry.type(description="One column of a result.")
class ResultColumn:
    name: str = strawberry.field(description="The item as requested: `customer.region`, `order.revenue`.")
    type: str = strawberry.field(description="string, integer, number, boolean, date or datetime")


@strawberry.enum(description="Where an answer came from.")
class CacheSource(enum.Enum):
    WAREHOUSE = strawberry.enum_value("WAREHOUSE", description="Computed by a warehouse statement of its own.")
    EXACT = strawberry.enum_value("EXACT", description="The same result, from the cache.")
    ROLLUP = strawberry.enum_value("ROLLUP", description="Re-aggregated from a finer cached result.")
    INFLIGHT = strawberry.enum_value("INFLIGHT", description="Waited for the same computation, already running.")


@strawberry.type(description="How the result cache served a request.")
class CacheInfo:
    hit: bool = strawberry.field(description="Answered without a warehouse statement of its own.")
    key: str = strawberry.field(description="The cache key: a digest of the SQL, the warehouse and the scope.")
    source: CacheSource = strawberry.field(
        description="WAREHOUSE: computed by its own statement; EXACT: the same result, cached; ROLLUP: "
                    "re-aggregated from a finer cached result; INFLIGHT: joined the same computation already "
                    "running (here or in another process).")


@strawberry.type(description="Rows of a query: one column per requested item, dimensions first.")
class QueryResult:
    columns: list[ResultColumn] = strawberry.field(description="The columns, in row order.")
    rows: JSON = strawberry.field(description="Rows as arrays, in column order; times as ISO 8601 strings.")
    sql: str = strawberry.field(description="The SQL that computed the rows.")
    cache: CacheInfo = strawberry.field(description="How the result cache served the rows.")
    truncated: bool = strawberry.field(default=False, description="True when the rows were cut at the server's "
                                       "maximum row count (`serve --max-rows`); ask for fewer with `limit`.")


@strawberry.type(description="A dimension in the catalog.")
class CatalogDimension:
    name: str = strawberry.field(description="The dimension's name within its entity.")
    type: str = strawberry.field(description="string, number, integer, boolean or time.")
    description: str = strawberry.field(description="What the dimension means.")
    grain: str | None = strawberry.field(description="For a time: the finest grain its data has.")


@strawberry.type(description="A metric in the catalog.")
class CatalogMetric:
    name: str = strawberry.field(description="The metric's name within its entity.")
    kind: str = strawberry.field(description="simple, derived, cumulative, offset or semi-additive.")
    description: str = strawberry.field(description="What the metric measures.")
    aggregation: str | None = strawberry.field(description="sum, count, count_distinct, avg, min, max, ... "
                                               "for a simple metric.")
    expression: str | None = strawberry.field(description="The SQL expression it aggregates, or the formula "
                                              "of a derived metric.")


@strawberry.type(description="A feature in the catalog.")
class CatalogFeature:
    name: str = strawberry.field(description="The feature's name within its entity.")
    kind: str = strawberry.field(description="metric, latest, dimension or derived.")
    description: str = strawberry.field(description="What the feature means.")
    source: str | None = strawberry.field(description="The metric or dimension it reads, or its expression.")
    window: str | None = strawberry.field(description="For a metric feature: the trailing window before `at`.")
    ttl: str | None = strawberry.field(description="For a latest feature: how old a value may be and still "
                                       "count.")


@strawberry.type(description="A many-to-one (or one-to-one) relationship.")
class CatalogRelationship:
    entity: str = strawberry.field(description="The entity it leads to.")
    key: list[str] = strawberry.field(description="The foreign key columns, in the target's key order.")
    type: str = strawberry.field(description="many_to_one or one_to_one.")


@strawberry.type(description="An entity in the catalog.")
class CatalogEntity:
    name: str = strawberry.field(description="The entity's name (`order_item`); its GraphQL field is camelCase.")
    description: str = strawberry.field(description="What one row of the entity is.")
    key: list[str] = strawberry.field(description="The key columns: one row per key.")
    time: str | None = strawberry.field(description="The time dimension `time:grain` means for its metrics.")
    dimensions: list[CatalogDimension] = strawberry.field(description="Its dimensions.")
    metrics: list[CatalogMetric] = strawberry.field(description="Its metrics.")
    features: list[CatalogFeature] = strawberry.field(description="Its features.")
    relationships: list[CatalogRelationship] = strawberry.field(description="Its many-to-one relationships.")


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def json_rows(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as JSON arrays, dates and times as ISO 8601 text. Only a column that holds one (its set of value types,
    made in C, says so) is converted value by value; the others are copied in C."""
    if not rows:
        return []
    columns = list(zip(*rows, strict=True))
    timed = [i for i, column in enumerate(columns) if any(issubclass(kind, date) for kind in set(map(type, column)))]
    if not timed:
        return list(map(list, rows))
    for i in timed:
        columns[i] = tuple(map(_iso, columns[i]))
    return list(map(list, zip(*columns, strict=True)))


def result_type(result: Result, truncated: bool = False) -> QueryResult:
    return QueryResult(
        columns=[ResultColumn(name=c.name, type=c.type) for c in result.columns],
        rows=JSON(json_rows(result.rows)),
        sql=result.sql,
        cache=CacheInfo(hit=result.cache_hit, key=result.cache_key, source=CacheSource(result.cache_source.value)),
        truncated=truncated,
    )


def cache_facts(result: Result) -> dict[str, Any]:
    """The cache facts of a typed field, as `extensions.cache` reports them."""
    return {"hit": result.cache_hit, "key": result.cache_key, "source": result.cache_source.value}


MAX_ROWS = 100_000  # per request unless the app says otherwise (`serve --max-rows`)


async def _run_capped(info: strawberry.Info, query: SemanticQuery, exact: bool | Collection[str] = False
                      ) -> tuple[Result, bool]:
    """Run a query asking for one row more than the server's maximum, so a cut is known, never silent; `exact`
    keeps decimals as `Decimal` (`Service.query`). From memory at once when it can be, else in a worker thread."""
    cap: int = info.context.get("max_rows", MAX_ROWS)
    if query.limit is None or query.limit > cap:
        query = replace(query, limit=cap + 1)
    service, access = _service(info), _access(info)
    result = service.from_memory(query, access, exact=exact)
    if result is None:
        result = await anyio.to_thread.run_sync(lambda: service.query(query, access, exact=exact))
    if len(result.rows) <= cap:
        return result, False
    return replace(result, rows=result.rows[:cap]), True


def catalog_of(model: Model) -> list[CatalogEntity]:
    def metric(m: Metric) -> CatalogMetric:
        return CatalogMetric(name=m.name, kind=m.kind, description=m.description, aggregation=m.agg,
                             expression=m.expr.sql(dialect=model.dialect) if m.expr is not None else None)

    def feature(f: Feature) -> CatalogFeature:
        return CatalogFeature(name=f.name, kind=f.kind, description=f.description,
                              source=f.ref or (f.expr.sql() if f.expr is not None else None),
                              window=str(f.window) if f.window else None, ttl=str(f.ttl) if f.ttl else None)

    return [
        CatalogEntity(
            name=e.name, description=e.description, key=list(e.key), time=e.time,
            dimensions=[CatalogDimension(name=d.name, type=d.type, description=d.description, grain=d.grain)
                        for d in e.dimensions.values()],
            metrics=[metric(m) for m in e.metrics.values()],
            features=[feature(f) for f in e.features.values()],
            relationships=[CatalogRelationship(entity=r.entity, key=list(r.key), type=r.type)
                           for r in e.relationships],
        )
        for e in model.entities.values()
    ]


def _value(root: Any, info: strawberry.Info) -> Any:
    return root.get(info.path.key)


def _arg(kind: Any, description: str) -> Any:
    return Annotated[kind, strawberry.argument(description=description)]


Metrics = Annotated[list[str] | None, strawberry.argument(
    description="Metrics by semantic name: `order.revenue`.")]
Dimensions = Annotated[list[str] | None, strawberry.argument(
    description="Dimensions by semantic name, a time with its grain: `customer.region`, "
                "`order.ordered_at:month`, `time:week` (each metric's own time).")]
WhereText = Annotated[str | None, strawberry.argument(
    description="A filter in the filter language: `customer.region = 'EU' and time:month >= "
                "'2024-01-01'`; conditions on metrics apply after aggregation.")]
OrderItems = Annotated[list[str] | None, strawberry.argument(
    description="Sort keys among the selected items, descending with a leading `-`: "
                "`-order.revenue`.")]
Limit = Annotated[int | None, strawberry.argument(
    description="At most this many rows (the server's maximum still applies).")]
Offset = Annotated[int | None, strawberry.argument(
    description="Skip this many rows first.")]
TimeZone = Annotated[str | None, strawberry.argument(
    description="An IANA time zone (`Europe/Paris`): periods are cut in it and times without an "
                "offset are read in it. Default UTC.")]
FillArgument = Annotated[Fill | None, strawberry.argument(
    description="ZERO or NULL: every period of the range, also those without data (the former strings \"zero\" "
                "and \"null\" are read too); default only periods with data.")]
DialectArgument = Annotated[Dialect | None, strawberry.argument(
    description="The SQL dialect to write (the former strings such as \"postgres\" are read too); default the "
                "warehouse's.")]
EntityName = Annotated[str, strawberry.argument(
    description="The entity whose features to read: `customer`.")]
Keys = Annotated[JSON, strawberry.argument(
    description="Keys as values, or objects of key columns for a composite key.")]
FeatureNames = Annotated[list[str] | None, strawberry.argument(
    description="Feature names; default all of the entity's.")]
At = Annotated[datetime | None, strawberry.argument(
    description="The point in time the values are as of (naive: UTC); default now.")]

GrainArgument = Annotated[Grain | None, strawberry.argument(
    description="The period to cut the time into; default: the dimension's own grain. Aliases give several.")]


def _time_value(root: Any, info: strawberry.Info, grain: GrainArgument = None) -> Any:
    return root.get(info.path.key)


def _service(info: strawberry.Info) -> Service:
    service: Service = info.context["service"]
    return service


def _online(info: strawberry.Info) -> OnlineStore:
    online: OnlineStore = info.context["online"]
    return online


async def _lookup(info: strawberry.Info, request: FeatureRequest) -> Result:
    """From memory at once when it can be; otherwise in a worker thread (it runs SQL)."""
    online, access = _online(info), _access(info)
    found = online.from_memory(request, access)
    if found is not None:
        return found
    return await anyio.to_thread.run_sync(lambda: online.lookup(request, access))


def _access(info: strawberry.Info) -> Access:
    """Who asks (set by the app after authentication); anonymous when a caller set none."""
    access = info.context.get("access", ANONYMOUS)
    return access if isinstance(access, Access) else ANONYMOUS


def _note_truncated(info: strawberry.Info, truncated: bool) -> None:
    """Typed row fields have no room for a flag: the response's `extensions.truncated` says if any was cut."""
    info.context["truncated"] = info.context.get("truncated", False) or truncated


class Truncation(SchemaExtension):
    def get_results(self) -> dict[str, Any]:
        context = self.execution_context.context
        if isinstance(context, dict) and "truncated" in context:
            return {"truncated": context["truncated"]}
        return {}


class SchemaConverter:
    """Builds the GraphQL types of a model: one `from_*` method per kind of node."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.fields: dict[tuple[str, str], tuple[str, Any]] = {}  # (type, field) -> (kind, what)
        self.wheres: dict[str, type] = {}
        self.orders: dict[str, type] = {}
        self.attributes: dict[str, type] = {}

    # -- output types --------------------------------------------------------------------------------------------

    def dimension_scalar(self, dim: Dimension) -> Any:
        """A dimension's raw values: `semantic.types` decides (Long unless the warehouse says 32 bits, Decimal
        for a DECIMAL column, Date for a DATE)."""
        return scalar_of(dimension_value_type(self.model, self.model.entities[dim.entity], dim.name))

    def from_dimension(self, type_name: str, dim: Dimension) -> Any:
        self.fields[(type_name, camel(dim.name))] = ("dimension", dim)
        description = dim.description or f"{dim.entity}.{dim.name}"
        if dim.type == "time":
            # A date at every grain it may be read at (day and coarser): Date; else the grain asked decides.
            daily = self.dimension_scalar(dim) is date or GRAINS.index(dim.grain or "second") >= GRAINS.index("day")
            return strawberry.field(resolver=_time_value, name=camel(dim.name),
                                    graphql_type=(date if daily else Temporal) | None,
                                    description=f"{description} (argument `grain`: default "
                                                f"{dim.grain or 'day'})")
        return strawberry.field(resolver=_value, name=camel(dim.name), graphql_type=self.dimension_scalar(dim) | None,
                                description=description)

    def from_metric(self, type_name: str, metric: Metric) -> Any:
        self.fields[(type_name, camel(metric.name))] = ("metric", metric)
        kind = scalar_of(metric_value_type(self.model, metric))
        return strawberry.field(resolver=_value, name=camel(metric.name), graphql_type=kind | None,
                                description=metric.description or metric.qualified)

    def attributes_of(self, entity: Entity) -> type:
        """`<Entity>Attributes`: an entity's dimensions and relationships, as reached from another entity."""
        name = f"{pascal(entity.name)}Attributes"
        if name not in self.attributes:
            cls = type(name, (), {"__annotations__": {}})
            self.attributes[name] = cls
            self._fill(cls, name, entity, with_metrics=False)
            strawberry.type(cls, name=name, description=f"Dimensions of {entity.name} reached through a "
                                                        f"relationship. {entity.description}".strip())
        return self.attributes[name]

    def _fill(self, cls: type, type_name: str, entity: Entity, with_metrics: bool) -> None:
        for dim in entity.dimensions.values():
            setattr(cls, f"d_{dim.name}", self.from_dimension(type_name, dim))
        if with_metrics:
            for metric in entity.metrics.values():
                setattr(cls, f"m_{metric.name}", self.from_metric(type_name, metric))
        for rel in entity.relationships:
            target = self.model.entities[rel.entity]
            self.fields[(type_name, camel(rel.entity))] = ("relationship", target)
            setattr(cls, f"r_{rel.entity}", strawberry.field(
                resolver=_value, name=camel(rel.entity), graphql_type=self.attributes_of(target) | None,
                description=f"The related {rel.entity} (many-to-one through {', '.join(rel.key)}). "
                            f"{target.description}".strip()))

    def from_entity(self, entity: Entity) -> type:
        name = pascal(entity.name)
        cls = type(name, (), {"__annotations__": {}})
        self._fill(cls, name, entity, with_metrics=True)
        return strawberry.type(cls, name=name, description=entity.description or entity.name)

    # -- inputs --------------------------------------------------------------------------------------------------

    def where_input_for(self, entity: Entity) -> type:
        name = f"{pascal(entity.name)}Where"
        if name in self.wheres:
            return self.wheres[name]
        cls = type(name, (), {"__annotations__": {}})
        self.wheres[name] = cls
        for dim in entity.dimensions.values():
            cls.__annotations__[f"d_{dim.name}"] = _filter_of(dimension_value_type(self.model, entity, dim.name)) | None
            setattr(cls, f"d_{dim.name}", strawberry.field(default=None, name=camel(dim.name),
                                                           description=dim.description or f"{dim.entity}.{dim.name}"))
        for rel in entity.relationships:
            cls.__annotations__[f"r_{rel.entity}"] = self.where_input_for(self.model.entities[rel.entity]) | None
            setattr(cls, f"r_{rel.entity}", strawberry.field(
                default=None, name=camel(rel.entity),
                description=f"Conditions on the related {rel.entity} (through {', '.join(rel.key)})."))
        for op in ("and", "or"):
            cls.__annotations__[f"x_{op}"] = list[cls] | None  # type: ignore[valid-type]
            setattr(cls, f"x_{op}", strawberry.field(default=None, name=op,
                                                     description=f"All conditions joined with {op.upper()}."))
        cls.__annotations__["x_not"] = cls | None
        cls.x_not = strawberry.field(default=None, name="not", description="Negates the condition.")  # type: ignore[attr-defined]
        return strawberry.input(cls, name=name, description=f"Conditions on {entity.name} dimensions (before "
                                                            f"aggregation); all fields set must hold.")

    def order_input_for(self, entity: Entity) -> type:
        name = f"{pascal(entity.name)}OrderBy"
        if name in self.orders:
            return self.orders[name]
        cls = type(name, (), {"__annotations__": {}})
        self.orders[name] = cls
        items: tuple[Dimension | Metric, ...] = (*entity.dimensions.values(), *entity.metrics.values())
        for item in items:
            cls.__annotations__[f"i_{item.name}"] = Direction | None
            setattr(cls, f"i_{item.name}", strawberry.field(
                default=None, name=camel(item.name),
                description=f"Sort by {item.entity}.{item.name} (it must be selected). {item.description}".strip()))
        for rel in entity.relationships:
            cls.__annotations__[f"r_{rel.entity}"] = self.order_input_for(self.model.entities[rel.entity]) | None
            setattr(cls, f"r_{rel.entity}", strawberry.field(
                default=None, name=camel(rel.entity), description=f"Sort by a field of the related {rel.entity}."))
        return strawberry.input(cls, name=name, description=f"One sort key over selected {entity.name} fields: "
                                                            f"set exactly one field.")

    def features_type(self, entity: Entity) -> type:
        """Plain attribute fields (no resolvers, which take twice as long per field): rows are namespaces whose
        attributes are `k_<key column>` and `f_<feature>`, and a feature field takes no arguments, so its
        aliases all read the same value."""
        name = f"{pascal(entity.name)}Features"
        cls = type(name, (), {"__annotations__": {}})
        for column in entity.key:
            cls.__annotations__[f"k_{column}"] = self.dimension_scalar(entity.dimensions[column]) | None
            setattr(cls, f"k_{column}", strawberry.field(default=None, name=camel(column),
                                                         description=f"Key column {column}."))
        for feature in entity.features.values():
            cls.__annotations__[f"f_{feature.name}"] = self._feature_scalar(entity, feature) | None
            setattr(cls, f"f_{feature.name}", strawberry.field(default=None, name=camel(feature.name),
                                                               description=feature.description or feature.name))
        return strawberry.type(cls, name=name, description=f"Feature values of one {entity.name} as of a point "
                                                           f"in time.")

    def _feature_scalar(self, entity: Entity, feature: Feature) -> Any:
        return scalar_of(feature_value_type(self.model, entity, feature))

    # -- root ----------------------------------------------------------------------------------------------------

    def root(self) -> type:
        cls = type("Query", (), {"__annotations__": {}})
        for entity in self.model.entities.values():
            setattr(cls, f"e_{entity.name}", self._entity_field(entity))
            if entity.features:
                setattr(cls, f"f_{entity.name}", self._features_field(entity))
        converter = self

        async def query(info: strawberry.Info, metrics: Metrics = None, dimensions: Dimensions = None,
                        where: WhereText = None, order_by: OrderItems = None, limit: Limit = None,
                        offset: Offset = None, timezone: TimeZone = None, fill: FillArgument = None) -> Any:
            q = _generic(metrics, dimensions, where, order_by, limit, offset, timezone, fill)
            return result_type(*await _run_capped(info, q))

        def compile_(info: strawberry.Info, metrics: Metrics = None, dimensions: Dimensions = None,
                     where: WhereText = None, order_by: OrderItems = None, limit: Limit = None,
                     offset: Offset = None, timezone: TimeZone = None, fill: FillArgument = None,
                     dialect: DialectArgument = None) -> str:
            q = _generic(metrics, dimensions, where, order_by, limit, offset, timezone, fill)
            return _service(info).compile(q, cast(str, dialect.value) if dialect else None, _access(info)).pretty()

        async def features(info: strawberry.Info, entity: EntityName, keys: Keys, names: FeatureNames = None,
                           at: At = None) -> Any:
            request = FeatureRequest.create(converter.model, entity, keys, names, at)
            return result_type(await _lookup(info, request))

        def catalog() -> list[CatalogEntity]:
            return catalog_of(converter.model)

        cls.x_query = strawberry.field(resolver=query, name="query", graphql_type=QueryResult,  # type: ignore[attr-defined]
                                       description="Any metrics by any dimensions, by semantic names "
                                                   "(`order.revenue`, `customer.region`, `time:month`); "
                                                   "`where` uses the filter language; `orderBy` items such as "
                "`-order.revenue`.")
        cls.x_compile = strawberry.field(resolver=compile_, name="compile",  # type: ignore[attr-defined]
                                         description="The SQL a query would run, without running it.")
        cls.x_features = strawberry.field(resolver=features, name="features", graphql_type=QueryResult,  # type: ignore[attr-defined]
                                          description="Feature values per key as of `at` (default now); keys "
                                                      "are values, or objects for composite keys.")
        cls.x_catalog = strawberry.field(resolver=catalog, name="catalog",  # type: ignore[attr-defined]
                                         description="Every entity, dimension, metric, feature and relationship "
                                                     "of the model, with descriptions.")
        return strawberry.type(cls, name="Query", description=self.model.description or None)

    def _entity_field(self, entity: Entity) -> Any:
        row_type = self.from_entity(entity)
        where_type = self.where_input_for(entity)
        order_type = self.order_input_for(entity)
        converter = self

        async def resolve(info: strawberry.Info, where: Any = None, order_by: Any = None, limit: int | None = None,
                          offset: int | None = None, timezone: str | None = None) -> Any:
            fields = collect(info._raw_info)
            items = converter.selection(pascal(entity.name), fields, (), (entity.name,))
            q = SemanticQuery(
                metrics=tuple(dict.fromkeys(text for _, kind, text in items if kind == "metric")),
                dimensions=tuple(dict.fromkeys(text for _, kind, text in items if kind == "dimension")),
                where=Filter.of(converter.where_tree(entity, where)) if where is not None else None,
                order_by=tuple(converter.orders_of(entity, order_by or [], items)),
                limit=limit, offset=offset, timezone=timezone,
            )
            exact = _exact_items(fields, items)
            result, truncated = await _run_capped(info, q, exact=exact)
            _note_truncated(info, truncated)
            # Typed rows have no room for cache facts: they go to `extensions.cache`, by response key.
            info.context.setdefault("cache", {})[info.path.key] = cache_facts(result)
            # The service keeps one rows object per stored answer; a cut answer is a new slice each time.
            return _rows(result, fields, items, kept=not truncated and _service(info).cache.enabled)

        resolve.__annotations__ = {
            "info": strawberry.Info,
            "where": _arg(where_type | None, f"Conditions on {entity.name} rows and related entities, before "
                                             f"aggregation."),
            "order_by": _arg(list[order_type] | None,  # type: ignore[valid-type]
                             "Sort keys in order, each over one selected field; without one, row order is "
                             "unspecified."),
            "limit": Limit, "offset": Offset, "timezone": TimeZone}
        return strawberry.field(resolver=resolve, name=camel(entity.name), graphql_type=list[row_type],  # type: ignore[valid-type]
                                description=f"{entity.description} Rows grouped by the selected dimensions, "
                                            f"with the selected metrics aggregated.".strip())

    def _features_field(self, entity: Entity) -> Any:
        features_type = self.features_type(entity)
        converter = self
        if len(entity.key) == 1:
            key_type: Any = self.dimension_scalar(entity.dimensions[entity.key[0]])
        else:
            key_type = JSON

        async def resolve(info: strawberry.Info, keys: Any, at: datetime | None = None) -> Any:
            names = [f.name for f in entity.features.values()]
            request = FeatureRequest.create(converter.model, entity.name, keys, names, at)
            result = await _lookup(info, request)
            attributes = [f"{'k' if c.kind == 'key' else 'f'}_{c.name}" for c in result.columns]
            index = {camel(c.name): i for i, c in enumerate(result.columns)}  # a field reads its column, aliased
            return Rows(collect(info._raw_info), result.rows, lambda _, field: index[field.name],
                        lambda row: SimpleNamespace(**dict(zip(attributes, row, strict=True))))

        resolve.__annotations__ = {
            "info": strawberry.Info,
            "keys": _arg(list[key_type], f"{entity.name} keys; each gives one row, in this order, duplicates "
                                         f"kept, unknown keys all null."),
            "at": At}
        return strawberry.field(resolver=resolve, name=f"{camel(entity.name)}Features",
                                graphql_type=list[features_type],  # type: ignore[valid-type]
                                description=f"Features of each {entity.name} key as of `at` (default now), one "
                                            f"row per key in the order given.")

    # -- selection -> query ------------------------------------------------------------------------------------

    def selection(self, type_name: str, fields: tuple[Field, ...], path: tuple[str, ...], chain: tuple[str, ...]
                  ) -> list[tuple[tuple[str, ...], str, str]]:
        """Selected fields (as graphql-core collects them: fragments spread, `@skip`/`@include` applied) ->
        [(response path, "dimension"|"metric", semantic name)]. `chain` is the entities from the root along the
        nested relationship fields; it names the join path where several lead to one entity
        (`flight { route { airport { city } } }` is `flight.route.airport.city`)."""
        items: list[tuple[tuple[str, ...], str, str]] = []
        for node in fields:
            if node.name == "__typename":
                continue
            kind, what = self.fields[(type_name, node.name)]
            key = (*path, node.key)
            if kind == "relationship":
                items += self.selection(f"{pascal(what.name)}Attributes", node.children or (), key,
                                        (*chain, what.name))
            elif kind == "metric":
                items.append((key, "metric", what.qualified))
            else:
                grain = node.arguments.get("grain")
                text = self.dimension_name(chain, what)
                if isinstance(grain, Grain):
                    text += f":{grain.value}"
                elif isinstance(grain, str):
                    text += f":{grain.lower()}"
                items.append((key, "dimension", text))
        return items

    def dimension_name(self, chain: tuple[str, ...], dim: Dimension) -> str:
        """The semantic name of a dimension reached from `chain[0]` along the relationship fields in `chain`:
        `airport.city`, or where several paths lead to its entity, the entities that pick this one
        (`route.airport.city`). Selections, typed filters and typed orders all name dimensions this way."""
        paths = all_paths(self.model, chain[0], dim.entity)
        if len(paths) <= 1:
            return f"{dim.entity}.{dim.name}"
        path = next((p for p in paths if (chain[0], *(r.entity for r in p)) == chain), None)
        if path is None:
            raise QueryError(f"{' -> '.join(chain)} passes an entity twice; reach {dim.entity} along a path that "
                             f"does not")
        return ".".join((*picking(chain[0], path, paths), dim.name))

    def where_tree(self, entity: Entity, where: Any, chain: tuple[str, ...] | None = None) -> Any:
        """A typed where input -> a filter-language tree (values become sqlglot literals)."""
        from sqlglot import exp

        chain = chain or (entity.name,)
        conditions: list[exp.Expr] = []
        for dim in entity.dimensions.values():
            spec = getattr(where, f"d_{dim.name}", None)
            if spec is None:
                continue
            *prefix, name = self.dimension_name(chain, dim).split(".")
            column = exp.column(name, table=prefix[-1], db=prefix[-2] if len(prefix) > 1 else None)
            for op in ("eq", "neq", "gt", "gte", "lt", "lte"):
                value = getattr(spec, f"o_{op}", None)
                if value is not None:
                    conditions.append(_compare(op, column, value))
            for op in ("in", "not_in"):
                values = getattr(spec, f"o_{op}", None)
                if values is not None:
                    if not values:
                        raise QueryError(f"{entity.name}.{dim.name}: `{camel(op)}` needs at least one value")
                    cond: exp.Expr = exp.In(this=column.copy(), expressions=[_literal(v) for v in values])
                    conditions.append(cond if op == "in" else exp.Not(this=cond))
            if getattr(spec, "o_like", None) is not None:
                conditions.append(exp.Like(this=column.copy(), expression=exp.convert(spec.o_like)))
            if getattr(spec, "o_is_null", None) is not None:
                cond = exp.Is(this=column.copy(), expression=exp.Null())
                conditions.append(cond if spec.o_is_null else exp.Not(this=cond))
        for rel in entity.relationships:
            nested = getattr(where, f"r_{rel.entity}", None)
            if nested is not None:
                conditions.append(self.where_tree(self.model.entities[rel.entity], nested, (*chain, rel.entity)))
        for op, join in (("and", exp.and_), ("or", exp.or_)):
            parts = getattr(where, f"x_{op}", None)
            if parts:
                conditions.append(exp.Paren(this=join(*(self.where_tree(entity, p, chain) for p in parts))))
        if where.x_not is not None:
            conditions.append(exp.Not(this=exp.Paren(this=self.where_tree(entity, where.x_not, chain))))
        if not conditions:
            return exp.true()
        return exp.and_(*conditions)

    def orders_of(self, entity: Entity, order_by: list[Any], items: list[tuple[tuple[str, ...], str, str]]
                  ) -> list[Order]:
        result = []
        for spec in order_by:
            found = self._order_item(entity, spec, (entity.name,))
            if len(found) != 1:
                raise QueryError(f"each orderBy item must set exactly one field, got {len(found)}")
            name, direction = found[0]
            matches = [text for _, _, text in items if text == name or text.split(":")[0] == name]
            if len(set(matches)) > 1:
                raise QueryError(f"cannot order by {name!r}: it is selected at several grains "
                                 f"({', '.join(sorted(set(matches)))})")
            result.append(Order(matches[0] if matches else name, direction == Direction.DESC))
        return result

    def _order_item(self, entity: Entity, spec: Any, chain: tuple[str, ...]) -> list[tuple[str, Direction]]:
        found = []
        for dim in entity.dimensions.values():
            value = getattr(spec, f"i_{dim.name}", None)
            if value is not None:
                found.append((self.dimension_name(chain, dim), value))
        for metric in entity.metrics.values():
            value = getattr(spec, f"i_{metric.name}", None)
            if value is not None:
                found.append((metric.qualified, value))
        for rel in entity.relationships:
            nested = getattr(spec, f"r_{rel.entity}", None)
            if nested is not None:
                found += self._order_item(self.model.entities[rel.entity], nested, (*chain, rel.entity))
        return found


def _compare(op: str, column: Any, value: Any) -> Any:
    from sqlglot import exp

    node = {"eq": exp.EQ, "neq": exp.NEQ, "gt": exp.GT, "gte": exp.GTE, "lt": exp.LT, "lte": exp.LTE}[op]
    return node(this=column.copy(), expression=_literal(value))


def _literal(value: Any) -> Any:
    """A typed filter value as a literal of the filter language: times as their ISO 8601 text, which the filter
    compiler reads in the query's time zone as it reads any time literal."""
    from sqlglot import exp

    return exp.convert(value.isoformat() if isinstance(value, date | datetime) else value)


def _generic(metrics: list[str] | None, dimensions: list[str] | None, where: str | None,
             order_by: list[str] | None, limit: int | None, offset: int | None,
             timezone: str | None, fill: Fill | None = None) -> SemanticQuery:
    return SemanticQuery(
        metrics=tuple(metrics or ()), dimensions=tuple(dimensions or ()),
        where=Filter.parse(where) if where is not None else None,
        order_by=tuple(Order.parse(o) for o in order_by or ()), limit=limit, offset=offset, timezone=timezone,
        fill=cast(str, fill.value) if fill is not None else None,
    )


def _exact_items(fields: tuple[Field, ...], items: list[tuple[tuple[str, ...], str, str]]) -> set[str]:
    """The items a typed field reads as `Decimal`: all but those of `Float` fields, whose decimals become floats
    as graphql-core's `Float` makes them (`float(value)`, correctly rounded), but converted column by column
    with the cached rows instead of on every request."""
    floats = {path for path, field in leaves(fields) if get_named_type(field.type) is GraphQLFloat}
    return {text for path, _, text in items if path not in floats}


def _rows(result: Result, fields: tuple[Field, ...], items: list[tuple[tuple[str, ...], str, str]],
          kept: bool) -> Rows:
    """Result rows as a row field's answer: each leaf reads the column of its item, by response path; `kept`: the
    rows are the service's own object for this answer (`Rows`)."""
    index = {c.name: i for i, c in enumerate(result.columns)}
    by_path = {path: index[text] for path, _, text in items}

    def column(path: tuple[str, ...], _: Field) -> int:
        return by_path[path]

    return Rows(fields, result.rows, column, plain_objects(fields, column), kept)


class CacheExtensions(SchemaExtension):
    """`extensions.cache`: for each typed root field answered, `{hit, key, source}` under its response key."""

    def get_results(self) -> dict[str, Any]:
        context = self.execution_context.context
        facts = context.get("cache") if isinstance(context, dict) else None
        return {"cache": facts} if facts else {}


class _Schema(strawberry.Schema):
    """Codes are given here, after strawberry is done: a syntax error leaves the operation before an extension's
    `on_operation` sees a result."""

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        return _with_codes(await super().execute(*args, **kwargs))

    def execute_sync(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        return _with_codes(super().execute_sync(*args, **kwargs))

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Nothing here: `api.errors.to_graphql` logs what is unexpected, once, with the request id; refused
        queries and bad variables are the client's to read, not the server's log's."""


def _with_codes(result: ExecutionResult) -> ExecutionResult:
    if result.errors:
        result.errors = [to_graphql(e) for e in result.errors]
        for error in result.errors:
            count_error(str((error.extensions or {}).get("code", "INTERNAL")))
    return result


ADMIN_ROLES = "SEMANTIC_CACHE_ADMIN_ROLES"  # comma-separated roles that may clear the cache; default "admin"


def may_clear_cache(access: Access) -> bool:
    """The local trusted user, or a reader holding one of the configured admin roles."""
    admins = {r.strip() for r in os.environ.get(ADMIN_ROLES, "admin").split(",") if r.strip()}
    return access.trusted or bool(access.roles & admins)


CacheEntity = Annotated[str | None, strawberry.argument(
    description="The entity whose cached answers to drop (`order`); leave out to drop every cached answer.")]


async def _clear_cache(info: strawberry.Info, entity: CacheEntity = None) -> int:
    access = _access(info)
    if not may_clear_cache(access):
        raise ForbiddenError("clearing the cache needs an admin role (SEMANTIC_CACHE_ADMIN_ROLES); ask an "
                             "administrator, or wait for the answers' ttl")
    service = _service(info)
    return await anyio.to_thread.run_sync(lambda: service.clear_cache(entity))


@strawberry.type(description="Operations that change the server's state.")
class Mutation:
    clear_cache: int = strawberry.mutation(
        resolver=_clear_cache, description="Drop the cached answers that read `entity` (every cached answer when "
                                           "it is left out), for every process sharing the cache; returns how many "
                                           "were dropped. Only a reader with an admin role may call it "
                                           "(SEMANTIC_CACHE_ADMIN_ROLES, default `admin`).")


def build_schema(model: Model, fast: bool = True) -> strawberry.Schema:
    """The GraphQL schema of a model, with parser and validation caches and limits on depth, aliases and tokens
    (`api.limits`). Row fields are completed in one pass (`api.shaping`); `fast=False` leaves every field to
    graphql-core (the same answers, slower; the property test compares the two). `Fill` and `Dialect` also read
    their former string spellings."""
    schema = _Schema(
        query=SchemaConverter(model).root(),
        mutation=Mutation,
        types=[Grain, Direction],
        config=StrawberryConfig(scalar_map=SCALARS),
        execution_context_class=FastExecutor if fast else None,
        # Factories: an extension object per request. The parser and validation caches still share one LRU each;
        # the limits' rule classes are made once, since the validation cache is keyed by the rules too.
        extensions=[CacheExtensions, Truncation, NameValues, *document_limits(settings.current()),
                    lambda: ParserCache(maxsize=512),
                    lambda: ValidationCache(maxsize=512)],
    )
    accept_old_spellings(schema._schema)
    return schema
