"""The semantic model as frozen dataclasses: entities, dimensions, metrics, relationships, features.

No I/O here: `loader.py` builds these from YAML, and every later step reads them. Expressions are sqlglot trees in
the model's dialect, with bare columns meaning the entity's own columns and `entity.name` a related dimension.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from sqlglot import exp

DimensionType = Literal["string", "number", "integer", "boolean", "time"]
DIMENSION_TYPES: tuple[str, ...] = ("string", "number", "integer", "boolean", "time")
GRAINS: tuple[str, ...] = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
STORAGES: tuple[str, ...] = ("timestamp", "timestamptz", "date")  # how a time column is stored (docs/time.md)
AGGREGATIONS: tuple[str, ...] = (
    "sum", "count", "count_distinct", "avg", "min", "max", "median", "percentile",
)
RelationshipType = Literal["many_to_one", "one_to_one"]


@dataclass(frozen=True)
class Where:
    """Where a node was written: file and line, for messages."""

    file: str = "<model>"
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, eq=False)
class Dimension:
    name: str
    entity: str
    type: DimensionType
    expr: exp.Expr
    description: str = ""
    grain: str | None = None  # the finest grain a time dimension can be read at
    where: Where = field(default_factory=Where)
    storage: str | None = None  # a time's column kind: timestamp (naive UTC, the default), timestamptz or date


@dataclass(frozen=True)
class Period:
    """A calendar length: `7 days`, `1 month`, `2 quarters`. Months are calendar months, not 30 days."""

    count: int
    unit: str  # one of GRAINS

    def __str__(self) -> str:
        return f"{self.count} {self.unit}{'s' if self.count != 1 else ''}"


@dataclass(frozen=True, eq=False)
class Metric:
    """An aggregate owned by one entity.

    `kind` is "simple" (agg over expr, optional filter), "derived" (expr over other metrics, whose bare names
    mean this entity's metrics and `entity.metric` another's), "cumulative" (`base` over a trailing `window`, from
    the start of the `grain_to_date` period, or over everything before when both are None), or "offset" (`base`
    of the period `offset` earlier).
    """

    name: str
    entity: str
    kind: Literal["simple", "derived", "cumulative", "offset"]
    agg: str | None = None
    expr: exp.Expr | None = None
    filter: exp.Expr | None = None
    percentile: float | None = None
    semi_additive: str | None = None  # "last" or "first": over time, the value at the period's last (first) time
    base: str | None = None  # the metric a cumulative or offset metric is built on, of the same entity
    window: Period | None = None
    grain_to_date: str | None = None
    offset: Period | None = None
    description: str = ""
    where: Where = field(default_factory=Where)

    @property
    def qualified(self) -> str:
        return f"{self.entity}.{self.name}"


@dataclass(frozen=True, eq=False)
class Relationship:
    """This entity holds `key` (its own columns) pointing at the key of `entity`."""

    entity: str
    key: tuple[str, ...]
    type: RelationshipType = "many_to_one"
    required: bool = False  # every row has a match (the key is never null and never dangles): joins may be inner
    where: Where = field(default_factory=Where)
    target_key: tuple[str, ...] = ()  # the target's columns `key` matches; () means the target's key


@dataclass(frozen=True, eq=False)
class Feature:
    """A value per entity key as of a point in time.

    kind "metric": `ref` is `entity.metric` of a related event entity, aggregated over events at or before t
    (within `window` when set). kind "dimension": `ref` is a dimension of this entity, null before its time.
    kind "latest": `ref` is `entity.dimension` of a related time-stamped entity, its latest row known at t.
    kind "derived": `expr` is SQL over this entity's other features.
    """

    name: str
    entity: str
    kind: Literal["metric", "dimension", "latest", "derived"]
    ref: str | None = None
    window: timedelta | None = None
    ttl: timedelta | None = None
    expr: exp.Expr | None = None
    description: str = ""
    where: Where = field(default_factory=Where)


@dataclass(frozen=True, eq=False)
class Policy:
    """Who may read an entity: `roles` ("*" for every role, anonymous included), the rows they see (`rows`, the
    filter language; columns of the table `__user__` stand for the reader's attributes, see `access.py`; None: every
    row) and the members hidden from them."""

    roles: tuple[str, ...]
    rows: exp.Expr | None = None
    hide: tuple[str, ...] = ()
    where: Where = field(default_factory=Where)


@dataclass(frozen=True)
class CachePolicy:
    """How long answers stay fresh (`cache:` in the model, at the top and per entity; all optional).

    `ttl`: seconds an answer is fresh; an answer reading several entities lives as long as the shortest.
    `stale_while_revalidate` (top level): seconds past its ttl an answer is still served while one refresh runs.
    `refresh_key` (per entity): a cheap query (`select max(updated_at) from orders`) whose answer changing drops
    exactly the answers that read the entity, checked at most every `refresh_every` seconds.
    """

    ttl: float | None = None
    stale_while_revalidate: float | None = None
    refresh_key: exp.Expr | None = None
    refresh_every: float = 10.0


@dataclass(frozen=True, eq=False)
class Entity:
    name: str
    key: tuple[str, ...]
    table: str | None = None
    sql: str | None = None
    time: str | None = None  # a dimension of this entity, or `entity.dimension` along a many-to-one path
    created: str | None = None
    description: str = ""
    dimensions: dict[str, Dimension] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)
    relationships: tuple[Relationship, ...] = ()
    features: dict[str, Feature] = field(default_factory=dict)
    where: Where = field(default_factory=Where)
    policies: tuple[Policy, ...] = ()
    cache: CachePolicy = field(default_factory=CachePolicy)
    # Set only in a reader's view of the model (`access.py`): the rows this reader may see (a SELECT), or why they
    # may not read the entity at all. `sql.joins.source_of` honours both, so every read goes through them.
    rows: exp.Expr | None = None
    forbidden: str | None = None

    def relationship_to(self, entity: str) -> Relationship | None:
        return next((r for r in self.relationships if r.entity == entity), None)


@dataclass(frozen=True, eq=False)
class Model:
    name: str
    entities: dict[str, Entity]
    dialect: str = "duckdb"
    warehouse: str | None = None
    description: str = ""
    source: str = "<model>"
    # entity -> case-folded column -> the warehouse's type, when read at serve time (`semantic.types` uses them)
    column_types: dict[str, dict[str, exp.DataType]] = field(default_factory=dict)
    cache: CachePolicy = field(default_factory=CachePolicy)

    def entity(self, name: str) -> Entity:
        return self.entities[name]
