"""SemanticQuery + Model -> Plan: which entity aggregates which metrics, grouped by what, filtered where.

Every name is checked here, so a bad request is refused before any SQL exists. The rules that keep numbers right:
each entity's metrics aggregate over that entity's own rows (joins go only many-to-one, so rows never multiply);
metrics of several entities are aggregated apart and stitched on the dimension values; derived metrics and metric
filters apply after aggregation.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from semantic.errors import QueryError, UnknownFieldError, did_you_mean
from semantic.model import GRAINS, Dimension, Entity, Metric, Model
from semantic.plan.fill import Fill
from semantic.plan.filters import Condition, Term, compile_filter, emit, fill_bounds
from semantic.plan.paths import all_paths
from semantic.plan.scope import Join, Scope, ident
from semantic.plan.timemodel import WALL, time_type, truncate
from semantic.plan.windows import Window, fine_grain, frame, interval, whole_periods
from semantic.query import DimensionRef, SemanticQuery
from semantic.types import metric_type


@dataclass(frozen=True)
class OutputColumn:
    name: str  # as requested
    alias: str  # in SQL
    type: str  # string integer number boolean date datetime
    kind: str  # dimension or metric
    description: str = ""


@dataclass(frozen=True)
class Aggregate:
    """One entity's metrics aggregated over its own rows at the query grain.

    With `windows`, the aggregate is a per-period series of base measures (time filters left out), and the
    windows computed over it are its outputs; `after` then selects the reported periods.
    """

    entity: str  # whose rows are aggregated (FROM them, `semantic.sql.joins`)
    joins: tuple[Join, ...]
    groups: tuple[tuple[str, exp.Expr], ...]
    measures: tuple[tuple[str, exp.Expr], ...]
    where: exp.Expr | None
    windows: tuple[Window, ...] = ()
    period: str | None = None  # alias of the time group the windows order by
    after: exp.Expr | None = None
    pick: str | None = None  # "last"/"first": semi-additive; the SNAPSHOT group is the time to pick by
    carried: tuple[str, ...] = ()  # plain measures of the series passed through beside the windows
    fine: str | None = None  # the series is at this finer grain; windows are range joins onto reported periods
    grain: str | None = None  # the reported periods' grain, with `fine`

    @property
    def outputs(self) -> tuple[str, ...]:
        if self.windows:
            return (*self.carried, *(w.alias for w in self.windows))
        return tuple(a for a, _ in self.measures)

    @property
    def description(self) -> str:
        what = ", ".join(self.outputs) or "distinct values"
        return f"{'Accumulate' if self.windows else 'Aggregate'} {self.entity}: {what}"


@dataclass(frozen=True)
class Plan:
    query: SemanticQuery
    aggregates: tuple[Aggregate, ...]
    groups: tuple[str, ...]  # aliases of the dimension columns, shared by every aggregate
    metrics: tuple[tuple[str, exp.Expr], ...]  # alias -> expression over measure aliases
    having: exp.Expr | None  # over measure aliases, applied after aggregation
    order: tuple[tuple[str, bool], ...]
    limit: int | None
    offset: int | None
    columns: tuple[OutputColumn, ...]  # in the order requested
    fill: Fill | None = None
    conditions: tuple[Condition, ...] = ()  # the filter's dimension conditions as resolved (roll-ups match these)


SNAPSHOT = "snapshot_time"


def alias_of(text: str) -> str:
    """`customer.region` -> `customer__region`; `time:month` -> `time__month`."""
    return text.replace(".", "__").replace(":", "__")


class _Planner:
    def __init__(self, model: Model, query: SemanticQuery) -> None:
        self.model = model
        self.query = query

    # -- names ---------------------------------------------------------------------------------------------------

    def entity(self, name: str, text: str) -> Entity:
        entity = self.model.entities.get(name)
        if entity is None:
            raise UnknownFieldError(f"{text!r}: unknown entity {name!r}.{did_you_mean(name, self.model.entities)}")
        return entity

    def metric(self, text: str) -> Metric:
        owner, _, name = text.rpartition(".")
        if not owner:
            raise QueryError(f"metric {text!r}: bare names are not allowed; write `entity.{text}`"
                             f"{self.guess(text, 'metrics')}")
        entity = self.entity(owner, text)
        if name not in entity.metrics:
            hint = did_you_mean(text, [m.qualified for m in entity.metrics.values()])
            if name in entity.dimensions:
                hint = f" {text!r} is a dimension; ask for it as a dimension."
            raise UnknownFieldError(f"unknown metric {text!r}.{hint}")
        return entity.metrics[name]

    def guess(self, name: str, kind: str) -> str:
        owners = [e.name for e in self.model.entities.values() if name in getattr(e, kind)]
        return f" (did you mean {' or '.join(repr(f'{o}.{name}') for o in owners)}?)" if owners else ""

    def dimension(self, ref: DimensionRef, text: str) -> tuple[Entity | None, DimensionRef, str]:
        """Check a dimension reference; return (owner or None for time:grain, ref with its grain, type)."""
        if ref.entity is None:
            if ref.grain is None:
                raise QueryError(f"{text!r}: the reserved `time` needs a grain, e.g. time:month")
            return None, ref, time_type(ref.grain)
        entity = self.entity(ref.entity, text)
        dim = entity.dimensions.get(ref.name)
        if dim is None:
            hint = did_you_mean(f"{ref.entity}.{ref.name}", [f"{entity.name}.{d}" for d in entity.dimensions])
            if ref.name in entity.metrics:
                hint = f" {ref.entity}.{ref.name} is a metric; ask for it as a metric."
            raise UnknownFieldError(f"unknown dimension {text!r}.{hint}")
        if dim.type != "time":
            if ref.grain is not None:
                raise QueryError(f"{text!r}: {ref.entity}.{ref.name} is a {dim.type}, not a time; drop "
                                 f"':{ref.grain}'")
            return entity, ref, dim.type
        grain = ref.grain or dim.grain or "day"
        if dim.grain and GRAINS.index(grain) < GRAINS.index(dim.grain):
            raise QueryError(f"{text!r}: {ref.entity}.{ref.name} is recorded per {dim.grain}; a {grain} grain "
                             f"is finer than the data. Ask for {ref.entity}.{ref.name}:{dim.grain} or coarser.")
        return entity, DimensionRef(ref.entity, ref.name, grain, ref.via), time_type(grain)

    # -- planning ------------------------------------------------------------------------------------------------

    def plan(self) -> Plan:
        query = self.query
        dims = []
        for text in query.dimensions:
            owner, ref, kind = self.dimension(DimensionRef.parse(text), text)
            desc = owner.dimensions[ref.name].description if owner else "Each metric's own time."
            dims.append((text, ref, OutputColumn(text, alias_of(text), kind, "dimension", desc)))
        requested = [self.metric(text) for text in query.metrics]

        compiled = compile_filter(query.where.tree if query.where else None, self, query.timezone)
        dim_filters, metric_filters = list(compiled.dimensions), compiled.metrics

        # Every simple metric the query needs (requested, inside derived ones, or in a metric filter).
        measures: dict[str, Metric] = {}
        metric_exprs: list[tuple[str, exp.Expr]] = []
        for metric in requested:
            metric_exprs.append((alias_of(metric.qualified), self._expand(metric, measures, ())))
        having = None
        if metric_filters:
            having = exp.and_(*(self._metric_filter(f, measures) for f in metric_filters))

        groups = tuple(alias for _, _, col in dims for alias in [col.alias])
        # One aggregate per entity and kind: plain, snapshot (last or first), windowed.
        by_entity: dict[tuple[str, str], list[Metric]] = {}
        windowed: dict[str, list[Metric]] = {}
        for metric in measures.values():
            if metric.kind == "simple":
                by_entity.setdefault((metric.entity, metric.semi_additive or ""), []).append(metric)
            else:
                windowed.setdefault(metric.entity, []).append(metric)
        if not by_entity and not windowed:
            base = self._dimension_base([ref for _, ref, _ in dims], dim_filters)
            by_entity[(base.name, "")] = []
        accumulated = []
        for name, metrics in sorted(windowed.items()):
            framed, ranged = self._split_windows(self.model.entities[name], metrics, dims)
            if framed:
                aggregate, merged = self._windowed(self.model.entities[name], framed, dims, dim_filters,
                                                   by_entity.get((name, ""), []))
                accumulated.append(aggregate)
                if merged:
                    del by_entity[(name, "")]  # its plain metrics come from the same scan
            for metric, fine in ranged:  # one range join per window length
                accumulated.append(self._windowed(self.model.entities[name], [metric], dims, dim_filters, [], fine)[0])
        aggregates = tuple(
            self._aggregate(self.model.entities[name], metrics, dims, dim_filters)
            for (name, _), metrics in sorted(by_entity.items())
        ) + tuple(accumulated)

        columns = [col for _, _, col in dims]
        for metric in requested:
            kind = metric_type(self.model, metric)
            columns.append(OutputColumn(metric.qualified, alias_of(metric.qualified), kind, "metric",
                                        metric.description))
        by_name = {col.name: col.alias for col in columns}
        order = []
        for item in query.order_by:
            if item.item not in by_name:
                hint = did_you_mean(item.item, by_name)
                raise QueryError(f"cannot order by {item.item!r}: it is not selected. Order by one of "
                                 f"{', '.join(repr(n) for n in by_name)}, or select it too.{hint}")
            order.append((by_name[item.item], item.descending))
        if not order and (query.limit is not None or query.offset):
            order = [(alias, False) for alias in groups]  # paging needs a stable order
        fill = self._fill(dims, dim_filters, requested, list(measures.values())) if query.fill else None
        return Plan(query, aggregates, groups, tuple(metric_exprs), having, tuple(order), query.limit,
                    query.offset, tuple(columns), fill, tuple(dim_filters))

    def _fill(self, dims: list[tuple[str, DimensionRef, OutputColumn]], filters: list[Condition],
              requested: list[Metric], measures: list[Metric]) -> Fill:
        """The periods to fill, and the measures an empty period gives 0 (`zero`: counts and sums, not stocks)."""
        times = [(ref, col) for _, ref, col in dims if col.type in ("date", "datetime")]
        if len(times) != 1:
            raise QueryError(f"fill needs exactly one time dimension to fill along; the query has {len(times)}")
        ref, col = times[0]
        windowed = [m.qualified for m in requested if m.kind in ("cumulative", "offset")]
        if windowed:
            raise QueryError(f"fill with cumulative or offset metrics ({', '.join(windowed)}) is not supported "
                             f"yet; ask without fill")
        start, end = fill_bounds(tuple(filters), ref.entity, ref.name, ref.grain or "day", self.query.timezone)
        zero = tuple(alias_of(m.qualified) for m in measures if self.query.fill == "zero" and m.kind == "simple"
                     and m.agg in ("sum", "count", "count_distinct") and m.semi_additive is None)
        return Fill(col.alias, ref.grain or "day", start, end, zero)

    def _expand(self, metric: Metric, measures: dict[str, Metric], trail: tuple[str, ...]) -> exp.Expr:
        """A metric as an expression over measure aliases; derived metrics expand recursively."""
        if metric.kind != "derived":
            measures.setdefault(metric.qualified, metric)
            return exp.column(ident(alias_of(metric.qualified)))
        if metric.qualified in trail:
            raise QueryError(f"derived metrics form a cycle: {' -> '.join((*trail, metric.qualified))}")
        owner = self.model.entities[metric.entity]

        def rewrite(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column):
                entity = self.model.entities[node.table] if node.table else owner
                inner = self._expand(entity.metrics[node.name], measures, (*trail, metric.qualified))
                return inner if isinstance(inner, exp.Column) else exp.Paren(this=inner)
            return node

        assert metric.expr is not None
        return metric.expr.copy().transform(rewrite, copy=False)

    def _metric_filter(self, tree: exp.Expr, measures: dict[str, Metric]) -> exp.Expr:
        def rewrite(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column):
                inner = self._expand(self.metric(f"{node.table}.{node.name}"), measures, ())
                return inner if isinstance(inner, exp.Column) else exp.Paren(this=inner)
            return node

        return tree.copy().transform(rewrite, copy=False)

    def _dimension_base(self, refs: list[DimensionRef], filters: list[Condition]) -> Entity:
        """With no metrics, the rows come from the one entity that reaches every dimension asked for."""
        names = {r.entity for r in refs if r.entity}
        names |= {t.ref.entity for f in filters for t in f.terms if t.ref.entity}
        if any(r.entity is None for r in refs):
            raise QueryError("time:grain means each metric's own time, so it needs at least one metric")
        for candidate in sorted(names):
            if all(all_paths(self.model, candidate, other) for other in names):
                return self.model.entities[candidate]
        raise QueryError(f"no entity reaches all of {', '.join(sorted(names))} along many-to-one relationships, "
                         f"so these dimensions have no common rows; query them separately")

    def _aggregate(self, entity: Entity, metrics: list[Metric], dims: list[tuple[str, DimensionRef, OutputColumn]],
                   filters: list[Condition], values: list[Metric] | None = None) -> Aggregate:
        """`values`: count_distinct metrics whose counted values become groups (and filters conditions), so the
        aggregate lists the distinct values per group instead of counting them."""
        scope = Scope(self.model, entity)
        timezone = self.query.timezone
        groups = []
        for text, ref, col in dims:
            needed = f"{entity.name} metrics by {text}" if metrics else f"dimension {text}"
            expr, storage = self._column(scope, entity, ref, needed)
            groups.append((col.alias, truncate(expr, ref.grain, timezone, storage) if ref.grain else expr))

        def target(term: Term) -> tuple[exp.Expr, str]:
            return self._column(scope, entity, term.ref, f"filter on {term.ref}")

        where = [emit(f, target, timezone) for f in filters]
        for value in values or ():
            needed = f"metric {value.qualified}"
            groups.append((alias_of(value.qualified), scope.qualify(value.expr or exp.Star(), entity, needed)))
            if value.filter is not None:
                where.append(scope.qualify(value.filter, entity, needed))
        measures = [(alias_of(m.qualified), self._measure(m, scope)) for m in metrics]
        pick = metrics[0].semi_additive if metrics else None
        if pick is not None:  # snapshots: aggregate per time too, then keep each group's last (first) time
            snapshot = scope.time(entity, f"metric {metrics[0].qualified}")
            groups.append((SNAPSHOT, snapshot))
            where.append(exp.Not(this=exp.Is(this=snapshot.copy(), expression=exp.Null())))  # no time, no "last"
        return Aggregate(entity.name, tuple(scope.joins.values()), tuple(groups), tuple(measures),
                         exp.and_(*where) if where else None, pick=pick)

    def _windowed(self, entity: Entity, metrics: list[Metric], dims: list[tuple[str, DimensionRef, OutputColumn]],
                  filters: list[Condition], plain: list[Metric], fine: str | None = None
                  ) -> tuple[Aggregate, bool]:
        """Cumulative and offset metrics of one entity: a per-period series of their base metrics with every filter
        but those on the time axis, window functions over it, then the time filters choose reported periods.

        The entity's `plain` metrics ride along in the same scan when the time filters only keep or drop whole
        periods (their grain is the period's or coarser): then filtering periods after is filtering rows before.
        Returns the aggregate and whether the plain metrics are in it."""
        period, ref = self._period_of(entity, metrics, dims)
        grain = ref.grain or "day"
        owner_name, _, time_name = (entity.time or "").rpartition(".")
        time_owner = owner_name or entity.name
        before = [f for f in filters if not f.on_axis(time_owner, time_name)]
        axis = [f for f in filters if f.on_axis(time_owner, time_name)]
        after = [emit(f, lambda _: (exp.column(ident(period)), WALL), self.query.timezone) for f in axis]
        whole = all(whole_periods(g or "", grain) for f in axis for g in f.grains)
        carried = plain if whole and fine is None else []
        bases = {m.base or "": entity.metrics[m.base or ""] for m in metrics}
        bases.update({m.name: m for m in carried})
        if fine is not None:  # the series at the finer grain, under the period's alias
            dims = [(t, DimensionRef(r.entity, r.name, fine, r.via) if c.alias == period else r, c)
                    for t, r, c in dims]
        distinct = [b for b in bases.values() if fine is not None and b.agg == "count_distinct"]
        if distinct:  # the series holds the distinct (period, value) pairs instead of a count per period
            series = self._aggregate(entity, [], dims, before, distinct)
        else:
            series = self._aggregate(entity, list(bases.values()), dims, before)
        windows = []
        for metric in metrics:
            base = bases[metric.base or ""]
            function = {"min": exp.Min, "max": exp.Max}.get(base.agg or "", exp.Sum)
            if metric.kind == "offset":
                function = exp.Max  # the frame holds at most the one row of the earlier period
            if fine is not None:
                span = interval(metric.window.count, metric.window.unit) if metric.window else None
                windows.append(Window(alias_of(metric.qualified), alias_of(base.qualified), function, None,
                                      metric.grain_to_date, span, distinct=base in distinct))
                continue
            spec, reset = frame(metric, grain) or (None, None)
            windows.append(Window(alias_of(metric.qualified), alias_of(base.qualified), function, spec, reset))
        return Aggregate(entity.name, series.joins, series.groups, series.measures, series.where,
                         tuple(windows), period, exp.and_(*after) if after else None,
                         carried=tuple(alias_of(m.qualified) for m in carried), fine=fine,
                         grain=grain if fine else None), bool(carried)

    def _period_of(self, entity: Entity, metrics: list[Metric], dims: list[tuple[str, DimensionRef, OutputColumn]]
                   ) -> tuple[str, DimensionRef]:
        """The one time dimension on the entity's time axis that windowed metrics report per."""
        owner_name, _, time_name = (entity.time or "").rpartition(".")
        time_owner = owner_name or entity.name
        periods = [(col.alias, ref) for _, ref, col in dims
                   if ref.entity is None or (ref.entity, ref.name) == (time_owner, time_name)]
        if len(periods) != 1:
            raise QueryError(
                f"{', '.join(m.qualified for m in metrics)} report a value per period, so the query needs exactly "
                f"one time dimension on {entity.name}'s time axis (time:<grain> or {time_owner}.{time_name}:<grain>"
                f"); it has {len(periods)}")
        return periods[0]

    def _split_windows(self, entity: Entity, metrics: list[Metric],
                       dims: list[tuple[str, DimensionRef, OutputColumn]]
                       ) -> tuple[list[Metric], list[tuple[Metric, str]]]:
        """Windowed metrics a window frame can compute at the query's grain, and the others with their fine grain."""
        grain = self._period_of(entity, metrics, dims)[1].grain or "day"
        framed: list[Metric] = []
        ranged: list[tuple[Metric, str]] = []
        for metric in metrics:
            spec = frame(metric, grain)  # also refuses a window the grain cannot report
            if _distinct(entity, metric):  # exact: distinct values counted over the window, never summed
                ranged.append((metric, fine_grain(metric, grain) if metric.window else grain))
            elif spec is None:
                ranged.append((metric, fine_grain(metric, grain)))
            else:
                framed.append(metric)
        return framed, ranged

    def _measure(self, metric: Metric, scope: Scope) -> exp.Expr:
        entity = self.model.entities[metric.entity]
        needed = f"metric {metric.qualified}"
        value: exp.Expr = scope.qualify(metric.expr, entity, needed) if metric.expr is not None else exp.Star()
        condition = scope.qualify(metric.filter, entity, needed) if metric.filter is not None else None
        agg = metric.agg
        if agg in ("percentile", "median"):
            if condition is not None:
                value = exp.Case(ifs=[exp.If(this=condition, true=value)])
            # Continuous, so a double: DuckDB would keep a DECIMAL input's scale and cut the interpolation.
            fraction = metric.percentile if agg == "percentile" else 0.5
            return exp.PercentileCont(this=exp.cast(value, exp.DataType.Type.DOUBLE),
                                      expression=exp.Literal.number(fraction))
        if agg == "count":
            aggregate: exp.Expr = exp.Count(this=value)
        elif agg == "count_distinct":
            aggregate = exp.Count(this=exp.Distinct(expressions=[value]))
        else:
            aggregate = {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}[agg or "sum"](this=value)
        if condition is None:
            return aggregate
        # FILTER rather than CASE inside: warehouses skip the rows instead of summing NULLs (DuckDB then also
        # proves the sum cannot overflow); sqlglot writes IF/IFF forms for dialects without FILTER.
        return exp.Filter(this=aggregate, expression=exp.Where(this=condition))

    def _column(self, scope: Scope, entity: Entity, ref: DimensionRef, needed: str) -> tuple[exp.Expr, str]:
        """A dimension (or, entity None, the aggregate's own time) as SQL over the scope, with its storage."""
        if ref.entity is None:
            return scope.time(entity, needed), _storage(self._time_dimension(entity))
        owner = self.model.entities[ref.entity]
        expr = scope.dimension(owner, ref.name, needed, ref.via)
        return expr, _storage(owner.dimensions[ref.name])

    def _time_dimension(self, entity: Entity) -> Dimension | None:
        owner_name, _, name = (entity.time or "").rpartition(".")
        owner = self.model.entities.get(owner_name) if owner_name else entity
        return owner.dimensions.get(name) if owner is not None else None


def _distinct(entity: Entity, metric: Metric) -> bool:
    """Whether a cumulative metric counts distinct values (accumulated over the window's rows, not per period)."""
    return metric.kind == "cumulative" and entity.metrics[metric.base or ""].agg == "count_distinct"


def _storage(dim: Dimension | None) -> str:
    if dim is None or dim.type != "time":
        return ""
    return dim.storage or "timestamp"


def plan(model: Model, query: SemanticQuery) -> Plan:
    """Check a query against the model and decide how to answer it; raises a QueryError subclass when it can't."""
    return _Planner(model, query).plan()
