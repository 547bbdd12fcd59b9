"""Plan -> one sqlglot SELECT. One CTE per aggregating entity, labelled with the plan step that made it; several
entities are stitched on the dimension values, null-safely; derived metrics, metric filters, order and paging last.
"""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from semantic.model import GRAINS, Model
from semantic.plan.fill import Fill
from semantic.plan.planner import SNAPSHOT, Aggregate, Plan
from semantic.plan.scope import ident
from semantic.plan.timemodel import truncate
from semantic.sql.joins import gate_orphans, joined, reuse_inner_joins

Matched = frozenset[tuple[str, str]]


def _col(alias: str, table: str | None = None) -> exp.Column:
    return exp.column(ident(alias), table=ident(table) if table else None)


def build_pick(agg: Aggregate, series: str) -> exp.Select:
    """Semi-additive measures: of each group's per-time values, the one at its last (or first) time, as
    ARG_MAX(value, time) (ARG_MIN), which dialect rules spell exactly where the name differs."""
    groups = [a for a, _ in agg.groups if a != SNAPSHOT]
    pick = exp.ArgMax if agg.pick == "last" else exp.ArgMin
    select = exp.select(*(_col(g) for g in groups), copy=False)
    select = select.select(*(exp.alias_(pick(this=_col(m), expression=_col(SNAPSHOT)), ident(m))
                             for m in agg.outputs), copy=False)
    select = select.from_(ident(series), copy=False)
    if groups:
        select = select.group_by(*(exp.Literal.number(i + 1) for i in range(len(groups))), copy=False)
    return select


def build_aggregate(agg: Aggregate, model: Model, matched: Matched = frozenset()) -> exp.Select:
    """One entity's measures over its rows; LEFT joins from it named in `matched` become inner joins with the
    orphans gated in (`gate_orphans`)."""
    select = exp.select(*(exp.alias_(e, ident(a)) for a, e in (*agg.groups, *agg.measures)), copy=False)
    select = joined(select, model, model.entities[agg.entity], agg.joins)
    if agg.where is not None:
        select = select.where(agg.where, copy=False)
    if agg.groups:
        select = select.group_by(*(exp.Literal.number(i + 1) for i in range(len(agg.groups))), copy=False)
    base = model.entities[agg.entity]
    select = reuse_inner_joins(select, model, base)
    aliases = {alias for entity, alias in matched if entity == agg.entity}
    return gate_orphans(select, base, aliases) if aliases else select


def _stitch(plan: Plan, names: list[str]) -> exp.Select:
    """Metrics of several entities, each aggregated on its own: UNION ALL then GROUP BY the dimensions. Grouping
    treats NULLs as equal, so this is the null-safe full outer join on the dimension values; each group has at most
    one row per entity, so MAX picks that entity's value and every group of every side survives.

    A branch pads the other entities' measures with NULLs typed like the measure (an empty scalar subquery of its
    CTE): PostgreSQL types a bare NULL column of the first branches as text and then refuses a number below it.
    """
    owners = {a: name for agg, name in zip(plan.aggregates, names, strict=True) for a in agg.outputs}
    measures = list(owners)
    branches = []
    for agg, name in zip(plan.aggregates, names, strict=True):
        own = set(agg.outputs)
        items: list[exp.Expr] = [_col(g) for g in plan.groups]
        items += [_col(m) if m in own else exp.alias_(_typed_null(m, owners[m]), ident(m)) for m in measures]
        branches.append(exp.select(*items, copy=False).from_(ident(name), copy=False))
    union: exp.Query = branches[0]
    for branch in branches[1:]:
        union = exp.union(union, branch, distinct=False, copy=False)
    select = exp.select(*(_col(g) for g in plan.groups), copy=False)
    select = select.select(*(exp.alias_(exp.Max(this=_col(m)), ident(m)) for m in measures), copy=False)
    select = select.from_(exp.alias_(exp.Subquery(this=union), ident("stitched"), table=True), copy=False)
    if plan.groups:
        select = select.group_by(*(exp.Literal.number(i + 1) for i in range(len(plan.groups))), copy=False)
    return select


def _typed_null(measure: str, cte: str) -> exp.Expr:
    return exp.Subquery(this=exp.select(_col(measure)).from_(ident(cte)).where(exp.false()))


def build_windows(agg: Aggregate, series: str) -> exp.Select:
    """Window functions over an entity's per-period series; the time filters then pick the reported periods."""
    items: list[exp.Expr] = [*(_col(a) for a, _ in agg.groups), *(_col(a) for a in agg.carried)]
    others = [a for a, _ in agg.groups if a != agg.period]
    period = _col(agg.period or "")
    # Rows without a time have no period to be "as of" or to look back from: their value is NULL, and they sit in a
    # partition of their own so they never enter another period's frame, however a dialect sorts NULLs.
    timeless = exp.Is(this=period.copy(), expression=exp.Null())
    for window in agg.windows:
        # Only windows a frame can compute reach here; the others (no spec) are range joins (build_ranged).
        assert window.spec is not None, f"{window.alias} has no window frame"
        partition: list[exp.Expr] = [_col(a) for a in others] + [timeless.copy()]
        if window.reset is not None:
            partition.append(truncate(period.copy(), window.reset))
        over = exp.Window(this=window.function(this=_col(window.base)), partition_by=partition,
                          order=exp.Order(expressions=[exp.Ordered(this=period.copy())]), spec=window.spec.copy())
        value = exp.Case(ifs=[exp.If(this=exp.Not(this=timeless.copy()), true=over)])
        items.append(exp.alias_(value, ident(window.alias)))
    select = exp.select(*items, copy=False).from_(ident(series), copy=False)
    if agg.after is None:
        return select
    # WHERE runs before window functions, so the period filter wraps the windowed rows.
    return exp.select("*").from_(exp.alias_(exp.Subquery(this=select), ident("windowed"), table=True)).where(
        agg.after.copy())


def _bound(value: datetime | None, edge: str) -> exp.Expr:
    if value is not None:
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.Type.TIMESTAMP)
    return exp.cast(exp.column(ident(edge), table=ident("bounds")), exp.DataType.Type.TIMESTAMP)


def _periods(fill: Fill) -> exp.Select:
    """One row per period from the start to the end of the range (generate_series, inclusive)."""
    count, unit = (3, "MONTH") if fill.grain == "quarter" else (1, fill.grain.upper())
    series = exp.GenerateSeries(start=_bound(fill.start, "lo"), end=_bound(fill.end, "hi"),
                                step=exp.Interval(this=exp.Literal.string(str(count)), unit=exp.var(unit)))
    table = exp.Table(this=series, alias=exp.TableAlias(this=ident("series"), columns=[ident("p")]))
    edges = exp.select(exp.alias_(exp.Min(this=_col(fill.period)), ident("lo")),
                       exp.alias_(exp.Max(this=_col(fill.period)), ident("hi"))).from_(ident("answer"))
    kind = exp.DataType.Type.DATE if GRAINS.index(fill.grain) >= GRAINS.index("day") else exp.DataType.Type.TIMESTAMP
    return exp.select(exp.alias_(exp.cast(exp.column(ident("p"), table=ident("series")), kind), ident("period"))) \
        .from_(exp.alias_(exp.Subquery(this=edges), ident("bounds"), table=True)).join(table)


def _filled(plan: Plan, fill: Fill, measures: list[str]) -> exp.Select:
    """Every period crossed with every combination of the other dimensions that has data, joined to the measures;
    metrics and metric filters are computed over this, so a filled period is filtered like any other."""
    others = [g for g in plan.groups if g != fill.period]
    items: list[exp.Expr] = []
    for group in plan.groups:
        source = exp.column(ident("period"), table=ident("periods")) if group == fill.period else \
            exp.column(ident(group), table=ident("keys"))
        items.append(exp.alias_(source, ident(group)))
    for alias in measures:
        value: exp.Expr = exp.column(ident(alias), table=ident("answer"))
        if alias in fill.zero:
            value = exp.Coalesce(this=value, expressions=[exp.Literal.number(0)])
        items.append(exp.alias_(value, ident(alias)))
    select = exp.select(*items).from_(ident("periods"))
    if others:
        keys = exp.select(*(_col(g) for g in others)).distinct().from_(ident("answer"))
        select = select.join(exp.alias_(exp.Subquery(this=keys), ident("keys"), table=True), join_type="cross")
    on: list[exp.Expr] = [exp.EQ(this=exp.column(ident(fill.period), table=ident("answer")),
                 expression=exp.column(ident("period"), table=ident("periods")))]
    on += [exp.NullSafeEQ(this=exp.column(ident(g), table=ident("answer")),
                          expression=exp.column(ident(g), table=ident("keys"))) for g in others]
    return select.join(ident("answer"), on=exp.and_(*on), join_type="left")


def build_ranged(agg: Aggregate, series: str) -> exp.Select:
    """Windows that are not a whole number of periods (30 days per week): each reported period (one with data)
    sums the finer series over `[period end - window, period end)`, by a range join on the aggregated series."""
    period, grain = agg.period or "", agg.grain or "day"
    values = {w.base for w in agg.windows if w.distinct}  # distinct-count series: the counted values are groups
    others = [a for a, _ in agg.groups if a != period and a not in values]
    reported = exp.select(*(_col(a) for a in others), exp.alias_(truncate(_col(period), grain), ident(period)))
    reported = reported.distinct().from_(ident(series))
    end = exp.Add(this=exp.column(ident(period), table=ident("reported")),
                  expression=exp.Interval(this=exp.Literal.string("1"), unit=exp.var(grain.upper())))
    if grain == "quarter":
        end.set("expression", exp.Interval(this=exp.Literal.string("3"), unit=exp.var("MONTH")))
    fine_time = exp.column(ident(period), table=ident("fine"))
    on: list[exp.Expr] = [exp.NullSafeEQ(this=exp.column(ident(a), table=ident("fine")),
                                         expression=exp.column(ident(a), table=ident("reported"))) for a in others]
    (window,) = agg.windows  # one window length per range join
    if window.span is not None:
        on.append(exp.GTE(this=fine_time.copy(), expression=exp.Sub(this=end.copy(), expression=window.span.copy())))
    elif window.reset is not None:  # grain to date: from the start of the reported period's `reset` period
        start = truncate(exp.column(ident(period), table=ident("reported")), window.reset)
        on.append(exp.GTE(this=fine_time.copy(), expression=start))
    on.append(exp.LT(this=fine_time, expression=end))
    items: list[exp.Expr] = [exp.column(ident(a), table=ident("reported")) for a in (*others, period)]
    for w in agg.windows:
        base = exp.column(ident(w.base), table=ident("fine"))
        value = exp.Count(this=exp.Distinct(expressions=[base])) if w.distinct else w.function(this=base)
        items.append(exp.alias_(value, ident(w.alias)))
    select = exp.select(*items).from_(exp.alias_(exp.Subquery(this=reported), ident("reported"), table=True))
    # LEFT: a period with data but none inside its window is still reported (with no value).
    select = select.join(exp.Table(this=ident(series), alias=exp.TableAlias(this=ident("fine"))), on=exp.and_(*on),
                         join_type="left")
    select = select.group_by(*(exp.Literal.number(i + 1) for i in range(len(others) + 1)))
    if agg.after is None:
        return select
    return exp.select("*").from_(exp.alias_(exp.Subquery(this=select), ident("ranged"), table=True)).where(
        agg.after.copy())


def build(plan: Plan, model: Model, matched: Matched = frozenset()) -> exp.Select:
    """The whole query for a plan over `model`'s entities. `matched`: (entity, join alias) pairs of LEFT joins from
    an aggregated entity whose every row found its target when last checked (`semantic.integrity`)."""
    ctes: list[tuple[str, exp.Select, str]] = []
    names = []
    for agg in plan.aggregates:
        if agg.fine:
            series = f"{agg.windows[0].alias}_by_{agg.fine}"
            ctes.append((series, build_aggregate(agg, model, matched), f"Aggregate {agg.entity} per {agg.fine}"))
            names.append(f"{agg.windows[0].alias}_windows")
            ctes.append((names[-1], build_ranged(agg, series), agg.description))
            continue
        if agg.windows:
            series = f"{agg.entity}_series"
            ctes.append((series, build_aggregate(agg, model, matched), f"Aggregate {agg.entity} per period: "
                                                       f"{', '.join(a for a, _ in agg.measures)}"))
            names.append(f"{agg.entity}_windows")
            ctes.append((names[-1], build_windows(agg, series), agg.description))
            continue
        if agg.pick:
            series = f"{agg.entity}_{agg.pick}_by_time"
            ctes.append((series, build_aggregate(agg, model, matched), f"Aggregate {agg.entity} per time"))
            names.append(f"{agg.entity}_{agg.pick}")
            ctes.append((names[-1], build_pick(agg, series), f"Keep each group's {agg.pick} time: "
                                                             f"{', '.join(agg.outputs)}"))
            continue
        name = f"{agg.entity}_metrics" if agg.measures else f"{agg.entity}_values"
        names.append(name)
        ctes.append((name, build_aggregate(agg, model, matched), agg.description))
    if len(plan.aggregates) == 1:
        source = names[0]
    else:
        source = "joined"
        ctes.append((source, _stitch(plan, names), "Stitch the entities' metrics on the dimension values"))
    if plan.fill is not None:  # periods are added to the measures, before metrics and metric filters
        measures = [a for agg in plan.aggregates for a in agg.outputs]
        answer = exp.select(*(_col(a) for a in (*plan.groups, *measures))).from_(ident(source))
        ctes.append(("answer", answer, "The measures before gap filling"))
        ctes.append(("periods", _periods(plan.fill), f"Every {plan.fill.grain} of the range"))
        source = "filled"
        ctes.append((source, _filled(plan, plan.fill, measures), "Every period, empty ones filled"))
    items = [_col(g) for g in plan.groups] + [exp.alias_(e.copy(), ident(a)) for a, e in plan.metrics]
    final = exp.select(*items, copy=False).from_(ident(source), copy=False)
    if plan.having is not None:
        final = final.where(plan.having.copy(), copy=False)
    if plan.order:
        final = final.order_by(*(exp.Ordered(this=_col(a), desc=d, nulls_first=False) for a, d in plan.order),
                               copy=False)
    if plan.limit is not None:
        final = final.limit(plan.limit, copy=False)
    if plan.offset:
        final = final.offset(plan.offset, copy=False)
    for name, select, label in ctes:
        final = final.with_(ident(name), as_=select, copy=False)
        final.args["with_"].expressions[-1].add_comments([f" {label} "])
    return final
