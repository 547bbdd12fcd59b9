"""OSI (Apache Ossie) core-spec models -> Model.

OSI names are global: a dataset becomes an entity of the same name, each field a dimension (facts too, since a
metric or a scalar query may read any field), each relationship a many-to-one relationship of its `from` dataset,
each metric a metric of its home dataset (the one whose rows its aggregate reads). Fields that reference other
fields become dimensions over those dimensions, so the planner expands the chain in dependency order; windowed
fields are computed over the dataset's rows first (the entity's `sql`), so a field reading one reads a column.

What OSI Foundation v0.1 defers is refused with its OSI error code at load time, never read approximately. A metric
that is valid OSI but has no counterpart here (a windowed metric) is kept as a refusal and reported when a query
asks for it, so the rest of the model stays usable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from semantic.errors import Issue, ModelError, QueryError
from semantic.model import Dimension, DimensionType, Entity, Metric, Model, Relationship, Where


class OsiError(QueryError):
    """A model or query refused with an OSI error code (Appendix C of the Foundation spec)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


RESERVED = ("grain", "filter", "query_filter")  # D-019
_MODEL_KEYS = ("name", "description", "ai_context", "datasets", "relationships", "metrics", "custom_extensions",
               "version", "osi_version", "dialect", "vendor_name", "dialects", "datatypes")
_DATASET_KEYS = ("name", "source", "primary_key", "unique_keys", "description", "ai_context", "fields",
                 "custom_extensions", "role", "label")
_FIELD_KEYS = ("name", "expression", "dimension", "label", "description", "datatype", "ai_context",
               "custom_extensions")
_RELATIONSHIP_KEYS = ("name", "from", "to", "from_columns", "to_columns", "description", "ai_context",
                      "custom_extensions")
_METRIC_KEYS = ("name", "expression", "description", "datatype", "ai_context", "custom_extensions", "dataset",
                "label")
_READ = {"ANSI_SQL": "duckdb", "OSI_SQL_2026": "duckdb", "SNOWFLAKE": "snowflake", "DATABRICKS": "databricks",
         "BIGQUERY": "bigquery"}
_TYPES: dict[str, DimensionType] = {"integer": "integer", "decimal": "number", "float": "number",
                                    "boolean": "boolean", "date": "time", "datetime": "time", "datetimetz": "time"}
# Constructs sqlglot cannot parse, or parses loosely, that the Foundation defers (§10).
_DEFERRED_TEXT = ((re.compile(r"\bEXISTS_IN\b", re.IGNORECASE), "the EXISTS_IN filter form"),
                  (re.compile(r"\{\s*role\s*="), "role-qualified references (`dataset{role=...}`)"),
                  (re.compile(r"\bOVER\s*\([^)]*\bEXCLUDING\b", re.IGNORECASE | re.DOTALL),
                   "Snowflake's PARTITION BY ... EXCLUDING window clause"))


@dataclass(frozen=True)
class OsiModel:
    """A Model with the OSI view of it: global metric names and the metrics it cannot answer (name -> error)."""

    model: Model
    metrics: Mapping[str, str]  # OSI metric name -> `entity.metric`
    refused: Mapping[str, OsiError] = field(default_factory=dict)

    @classmethod
    def of(cls, model: Model) -> OsiModel:
        """Our own model seen through OSI: a metric name that only one entity uses names that metric."""
        names: dict[str, list[str]] = {}
        for entity in model.entities.values():
            for metric in entity.metrics.values():
                names.setdefault(metric.name, []).append(metric.qualified)
        return cls(model, {name: found[0] for name, found in names.items() if len(found) == 1})


def is_osi(document: Any) -> bool:
    return isinstance(document, dict) and ("datasets" in document or "semantic_model" in document)


def expression_text(value: Any, what: str) -> tuple[str, str]:
    """A field or metric expression, plain or `{dialects: [{dialect, expression}]}`; (text, sqlglot dialect)."""
    if isinstance(value, str):
        return value, "duckdb"
    if isinstance(value, dict) and isinstance(value.get("dialects"), list) and value["dialects"]:
        entries = [d for d in value["dialects"] if isinstance(d, dict) and isinstance(d.get("expression"), str)]
        chosen = next((d for d in entries if str(d.get("dialect", "ANSI_SQL")).upper() in ("ANSI_SQL",
                                                                                             "OSI_SQL_2026")),
                      next((d for d in entries if str(d.get("dialect", "")).upper() in _READ), None))
        if chosen is not None:
            return chosen["expression"], _READ[str(chosen.get("dialect", "ANSI_SQL")).upper()]
    raise OsiError("E_INVALID_MODEL", f"{what}: `expression` must be SQL text or {{dialects: [{{dialect, "
                                      f"expression}}]}} with an ANSI_SQL, SNOWFLAKE, DATABRICKS or BIGQUERY entry")


def parse_expression(text: str, read: str, what: str) -> exp.Expr:
    """Parse OSI SQL, refusing the deferred constructs (E_DEFERRED_KEY_REJECTED, E_DEFERRED_FRAME_MODE)."""
    for pattern, name in _DEFERRED_TEXT:
        if pattern.search(text):
            raise OsiError("E_DEFERRED_KEY_REJECTED", f"{what}: {name} is deferred in OSI Foundation v0.1")
    try:
        tree = sqlglot.parse_one(text, read=read)
    except (ParseError, TokenError) as error:
        raise OsiError("E_PARSE", f"{what}: cannot parse {text!r}: {str(error).splitlines()[0]}") from None
    for node in tree.walk():
        if isinstance(node, exp.WithinGroup):
            raise OsiError("E_DEFERRED_KEY_REJECTED", f"{what}: ordered-set aggregates (WITHIN GROUP) are deferred "
                                                      f"in OSI Foundation v0.1")
        if isinstance(node, exp.Anonymous) and node.name.upper() == "ATTR":
            raise OsiError("E_DEFERRED_KEY_REJECTED", f"{what}: ATTR() is deferred in OSI Foundation v0.1")
        if isinstance(node, exp.Window):
            if any(isinstance(inner, exp.Window) for inner in node.walk() if inner is not node):
                raise OsiError("E_NESTED_WINDOW", f"{what}: a window function inside another window function")
            spec = node.args.get("spec")
            if spec is not None and str(spec.args.get("kind", "")).upper() == "GROUPS":
                raise OsiError("E_DEFERRED_FRAME_MODE", f"{what}: GROUPS frames are deferred; use ROWS or RANGE")
            if spec is not None and any(isinstance(n, exp.Placeholder) for n in spec.walk()):
                raise OsiError("E_DEFERRED_FRAME_MODE", f"{what}: parameterised frame bounds are deferred; write "
                                                        f"the number")
    return tree


_INTEGER_WINDOWS = (exp.RowNumber, exp.Rank, exp.DenseRank, exp.Count, exp.Ntile)
_PREDICATES = (exp.Predicate, exp.Connector, exp.Not, exp.Boolean, exp.In, exp.Between, exp.Is)


def _infer(tree: exp.Expr, dimension: bool) -> DimensionType:
    """A field's type when OSI gives no `datatype`, from its expression's shape. A bare column is a string when
    it is a dimension and a number when it is a fact (a field without `dimension`: what metrics aggregate)."""
    if isinstance(tree, exp.Window):
        return "integer" if isinstance(tree.this, _INTEGER_WINDOWS) else "number"
    if isinstance(tree, _PREDICATES):
        return "boolean"
    if isinstance(tree, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Neg | exp.Mod):
        return "number"
    if isinstance(tree, exp.Literal):
        return "string" if tree.is_string else "number"
    if isinstance(tree, exp.DPipe | exp.Concat | exp.Lower | exp.Upper | exp.Trim):
        return "string"
    return "string" if dimension else "number"


def has_aggregate(tree: exp.Expr) -> bool:
    """An aggregate outside any window (SUM(x) OVER (...) is a row-level value)."""
    return any(isinstance(node, exp.AggFunc) and node.find_ancestor(exp.Window) is None for node in tree.walk())


def has_window(tree: exp.Expr) -> bool:
    return any(isinstance(node, exp.Window) for node in tree.walk())


class _Graph:
    """Which datasets reach which along relationships (from -> to, many-to-one)."""

    def __init__(self, edges: Iterable[tuple[str, str]]) -> None:
        self.out: dict[str, set[str]] = {}
        for source, target in edges:
            self.out.setdefault(source, set()).add(target)

    def reaches(self, source: str, target: str) -> bool:
        seen, todo = {source}, [source]
        while todo:
            for nxt in self.out.get(todo.pop(), ()):
                if nxt == target:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return source == target


def _keys(node: Any, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise OsiError("E_INVALID_MODEL", f"{what} must be a mapping, got {node!r}")
    for key in node:
        if key not in allowed:
            raise OsiError("E_DEFERRED_KEY_REJECTED", f"{what}: key {key!r} is not part of OSI Foundation v0.1 "
                                                      f"(deferred, §10); known keys: {', '.join(allowed)}")
    return node


def _name(node: dict[str, Any], what: str) -> str:
    name = node.get("name")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        raise OsiError("E_INVALID_MODEL", f"{what} needs a `name` (letters, digits, underscores), got {name!r}")
    if name.lower() in RESERVED:
        raise OsiError("E_RESERVED_NAME", f"{what}: {name!r} is reserved in OSI (GRAIN, FILTER, QUERY_FILTER); "
                                          f"rename it")
    return name


def _columns(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise OsiError("E_INVALID_MODEL", f"{what} must be a column or a list of columns, got {value!r}")


@dataclass
class _Dataset:
    name: str
    source: str
    key: tuple[str, ...]
    fields: dict[str, tuple[exp.Expr, DimensionType, str]]  # name -> (tree, type, description)
    description: str


def read(document: Any, source: str = "<osi>") -> OsiModel:
    """An OSI document (the flat Foundation form, or core-spec `semantic_model: [...]`) as an OsiModel."""
    osi, issues = read_issues(document, source)
    if issues:
        raise ModelError(issues)
    return osi


def read_issues(document: Any, source: str = "<osi>") -> tuple[OsiModel, list[Issue]]:
    """The OsiModel and what validating its Model finds. What OSI refuses while mapping (a deferred key, a duplicate
    name) raises OsiError with its code: the mapping stops at the first."""
    if isinstance(document, dict) and "semantic_model" in document:
        models = document["semantic_model"]
        if not isinstance(models, list) or len(models) != 1:
            raise OsiError("E_INVALID_MODEL", "`semantic_model` must list exactly one model to read")
        document = models[0]
    doc = _keys(document, _MODEL_KEYS, "the model")
    datasets: dict[str, _Dataset] = {}
    for node in doc.get("datasets") or []:
        dataset = _dataset(node)
        if dataset.name in datasets:
            raise OsiError("E_DUPLICATE_NAME", f"dataset {dataset.name!r} is declared twice")
        datasets[dataset.name] = dataset
    where = Where(source, 0)  # OSI documents are read without lines
    relationships = _relationships(doc.get("relationships") or [], datasets, where)
    graph = _Graph((src, rel.entity) for src, rel in relationships)
    parsed = _parse_metrics(doc.get("metrics") or [], datasets)
    windowed = _windowed_metrics(parsed, datasets, graph)
    entities = {name: _entity(ds, datasets, graph, [r for s, r in relationships if s == name], where)
                for name, ds in datasets.items()}
    metrics, names = _metrics(parsed, windowed, datasets, graph, where)
    for entity_name, metric in metrics:
        entities[entity_name].metrics[metric.name] = metric
    refused = {name: OsiError("E_UNSUPPORTED", f"metric {name!r} is windowed: it is a value per row of "
                                               f"{home}, so ask for it as the field {home}.{name} of a scalar "
                                               f"query (`fields`)") for name, home in windowed.items()}
    model = Model(name=str(doc.get("name") or "osi"), entities=entities, dialect="duckdb",
                  description=str(doc.get("description") or "").strip(), source=source)
    from semantic.validate import validate  # validation reads the Model built here, as for our own YAML

    return OsiModel(model, names, refused), list(validate(model))


def _dataset(node: Any) -> _Dataset:
    node = _keys(node, _DATASET_KEYS, "a dataset")
    name = _name(node, "a dataset")
    what = f"dataset {name!r}"
    if "metrics" in node:  # caught by _keys already; kept explicit for the message's sake
        raise OsiError("E_DEFERRED_KEY_REJECTED", f"{what}: per-dataset metrics are deferred")
    src = node.get("source")
    if not isinstance(src, str) or not src.strip():
        raise OsiError("E_INVALID_MODEL", f"{what} needs a `source` (a table)")
    if "primary_key" not in node:
        raise OsiError("E_INVALID_MODEL", f"{what} needs a `primary_key`: rows are counted by it")
    key = _columns(node["primary_key"], f"{what} primary_key")
    fields: dict[str, tuple[exp.Expr, DimensionType, str]] = {}
    for child in node.get("fields") or []:
        child = _keys(child, _FIELD_KEYS, f"a field of {what}")
        fname = _name(child, f"a field of {what}")
        fwhat = f"field {name}.{fname}"
        if fname in fields:
            raise OsiError("E_DUPLICATE_NAME", f"{fwhat} is declared twice")
        text, dialect = expression_text(child.get("expression", fname), fwhat)
        tree = parse_expression(text, dialect, fwhat)
        if has_aggregate(tree):
            raise OsiError("E_AGGREGATE_IN_FIELD", f"{fwhat}: {text!r} aggregates; fields are row-level, so move "
                                                   f"the aggregate to a top-level metric such as "
                                                   f"SUM({name}.{fname})")
        dim: dict[str, Any] = child["dimension"] if isinstance(child.get("dimension"), dict) else {}
        datatype = str(child.get("datatype", "")).lower()
        kind: DimensionType = "time" if dim.get("is_time") else \
            _TYPES.get(datatype, "string") if datatype else _infer(tree, "dimension" in child)
        fields[fname] = (tree, kind, str(child.get("description") or "").strip())
    return _Dataset(name, src, key, fields, str(node.get("description") or "").strip())


def _relationships(nodes: list[Any], datasets: Mapping[str, _Dataset], where: Where
                   ) -> list[tuple[str, Relationship]]:
    found: list[tuple[str, Relationship]] = []
    seen: dict[tuple[str, str, tuple[str, ...]], str] = {}
    for node in nodes:
        node = _keys(node, _RELATIONSHIP_KEYS, "a relationship")
        name = _name(node, "a relationship")
        what = f"relationship {name!r}"
        src, dst = node.get("from"), node.get("to")
        for end in (src, dst):
            if end not in datasets:
                raise OsiError("E_NAME_NOT_FOUND", f"{what}: no dataset {end!r}")
        assert isinstance(src, str) and isinstance(dst, str)
        from_columns = _columns(node.get("from_columns"), f"{what} from_columns")
        to_columns = _columns(node.get("to_columns"), f"{what} to_columns")
        target_key = datasets[dst].key
        if len(from_columns) != len(to_columns) or set(to_columns) != set(target_key):
            raise OsiError("E_UNSUPPORTED", f"{what}: to_columns {list(to_columns)} must be the primary key of "
                                            f"{dst!r} ({list(target_key)}); relationships point at a row by its key")
        by_target = dict(zip(to_columns, from_columns, strict=True))
        key = tuple(by_target[c] for c in target_key)
        if (src, dst, key) in seen:
            raise OsiError("E_DEFERRED_KEY_REJECTED", f"{what}: a second relationship {src} -> {dst} on the same "
                                                      f"columns as {seen[(src, dst, key)]!r} (a multi-hop bridge) "
                                                      f"is deferred in OSI Foundation v0.1")
        seen[(src, dst, key)] = name
        if src == dst:
            continue  # reflexive: parses, but role-qualified traversal is deferred (D-018); no join follows it
        found.append((src, Relationship(dst, key, "many_to_one", False, where)))
    return found


def _field_refs(dataset: _Dataset, tree: exp.Expr) -> set[str]:
    """The fields of `dataset` that `tree` reads (a field `x: x` is its column, not a reference)."""
    refs = set()
    for column in tree.find_all(exp.Column):
        if column.table in ("", dataset.name) and column.name in dataset.fields:
            own = dataset.fields[column.name][0]
            if not (isinstance(own, exp.Column) and own.name == column.name and own.table in ("", dataset.name)):
                refs.add(column.name)
    return refs


def _entity(dataset: _Dataset, datasets: Mapping[str, _Dataset], graph: _Graph,
            relationships: list[Relationship], where: Where) -> Entity:
    deps = {name: _field_refs(dataset, tree) for name, (tree, _, _) in dataset.fields.items()}
    _check_acyclic(dataset.name, deps)
    windowed = {name for name, (tree, _, _) in dataset.fields.items() if has_window(tree)}
    dimensions: dict[str, Dimension] = {}
    for name, (tree, kind, description) in dataset.fields.items():
        expr = exp.column(name) if name in windowed else _local(dataset, tree, datasets, graph,
                                                                f"field {dataset.name}.{name}")
        dimensions[name] = Dimension(name, dataset.name, kind, expr, description, None, where)
    for column in dataset.key:
        dimensions.setdefault(column, Dimension(column, dataset.name, "string", exp.column(column), where=where))
    sql = None
    if windowed:  # computed over the dataset's rows before anything joins or filters them
        inline = {name: _inline(dataset, name, deps) for name in dataset.fields}
        select = exp.select(exp.Star(), *(exp.alias_(inline[n], n, quoted=True) for n in dataset.fields
                                          if n in windowed)).from_(exp.to_table(dataset.source))
        sql = select.sql(dialect="duckdb")
    return Entity(name=dataset.name, key=dataset.key, table=None if sql else dataset.source, sql=sql,
                  description=dataset.description, dimensions=dimensions, relationships=tuple(relationships),
                  where=where)


def _check_acyclic(dataset: str, deps: Mapping[str, set[str]]) -> None:
    state: dict[str, int] = {}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join((*trail[trail.index(name):], name))
            raise OsiError("E_FIELD_DEPENDENCY_CYCLE", f"dataset {dataset!r}: fields reference each other in a "
                                                       f"cycle ({cycle}); fields must form a DAG")
        state[name] = 1
        for dep in sorted(deps.get(name, ())):
            visit(dep, (*trail, name))
        state[name] = 2

    for name in sorted(deps):
        visit(name, ())


def _local(dataset: _Dataset, tree: exp.Expr, datasets: Mapping[str, _Dataset], graph: _Graph, what: str
           ) -> exp.Expr:
    """A field expression in our terms: own columns bare, own fields and related datasets' fields `ds.field`."""
    refs = _field_refs(dataset, tree)

    def rewrite(node: exp.Expr) -> exp.Expr:
        if not isinstance(node, exp.Column):
            return node
        owner = node.table or dataset.name
        if owner == dataset.name:
            if node.name in refs:
                return exp.column(node.name, table=dataset.name)
            return exp.column(node.name)
        if owner not in datasets or node.name not in datasets[owner].fields:
            raise OsiError("E_NAME_NOT_FOUND", f"{what}: no field {node.sql()!r}")
        if graph.reaches(dataset.name, owner):
            return exp.column(node.name, table=owner)
        if graph.reaches(owner, dataset.name):
            raise OsiError("E_UNAGGREGATED_FINER_GRAIN_REFERENCE",
                           f"{what}: {node.sql()!r} is at a finer grain ({owner} has many rows per "
                           f"{dataset.name} row); aggregate it in a metric instead")
        raise OsiError("E_NO_PATH", f"{what}: no relationship path from {dataset.name} to {owner}")

    return tree.copy().transform(rewrite, copy=False)


def _inline(dataset: _Dataset, name: str, deps: Mapping[str, set[str]]) -> exp.Expr:
    """A field as raw SQL over the dataset's columns, other fields expanded (for the windowed-field SELECT)."""

    def rewrite(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and node.table in ("", dataset.name):
            if node.name in deps.get(name, ()):
                return exp.Paren(this=_inline(dataset, node.name, deps))
            return exp.column(node.name)
        return node

    return dataset.fields[name][0].copy().transform(rewrite, copy=False)


_AGGS: dict[type[exp.Expr], str] = {exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max",
                                    exp.Count: "count", exp.Median: "median"}


def _parse_metrics(nodes: list[Any], datasets: Mapping[str, _Dataset]
                   ) -> dict[str, tuple[exp.Expr, str | None, str]]:
    parsed: dict[str, tuple[exp.Expr, str | None, str]] = {}
    for node in nodes:
        node = _keys(node, _METRIC_KEYS, "a metric")
        name = _name(node, "a metric")
        if name in parsed:
            raise OsiError("E_DUPLICATE_NAME", f"metric {name!r} is declared twice")
        text, dialect = expression_text(node.get("expression"), f"metric {name!r}")
        home = node.get("dataset")
        if home is not None and home not in datasets:
            raise OsiError("E_NAME_NOT_FOUND", f"metric {name!r}: no dataset {home!r}")
        tree = parse_expression(text, dialect, f"metric {name!r}")
        for agg in tree.find_all(exp.AggFunc):
            if agg.find_ancestor(exp.Window) is None and any(
                    isinstance(inner, exp.AggFunc) for inner in agg.walk() if inner is not agg):
                raise OsiError("E_NESTED_AGGREGATION_DEFERRED",
                               f"metric {name!r}: {tree.sql()!r} aggregates an aggregate; the per-home-row reading "
                               f"of nested aggregation is deferred (D-027). Aggregate once, e.g. {agg.sql()}")
        parsed[name] = (tree, home, str(node.get("description") or "").strip())
    return parsed


def _windowed_metrics(parsed: Mapping[str, tuple[exp.Expr, str | None, str]], datasets: Mapping[str, _Dataset],
                      graph: _Graph) -> dict[str, str]:
    """A metric that is a window function is a value per row of its home dataset (D-028): it joins that dataset's
    fields, computed with its windowed fields. Returns name -> home dataset."""
    windowed: dict[str, str] = {}
    for name, (tree, hint, description) in parsed.items():
        if not isinstance(tree, exp.Window):
            continue
        home = _home(list(tree.find_all(exp.Column)), hint, graph, f"metric {name!r}")
        dataset = datasets[home]
        if name in dataset.fields:
            raise OsiError("E_DUPLICATE_NAME", f"metric {name!r} has the name of a field of {home!r}")
        dataset.fields[name] = (tree, _infer(tree, False), description)
        windowed[name] = home
    return windowed


def _metrics(parsed: Mapping[str, tuple[exp.Expr, str | None, str]], windowed: Mapping[str, str],
             datasets: Mapping[str, _Dataset], graph: _Graph, where: Where
             ) -> tuple[list[tuple[str, Metric]], dict[str, str]]:
    out: list[tuple[str, Metric]] = []
    names: dict[str, str] = {}
    for name, (tree, home, description) in parsed.items():
        if name in windowed:
            continue
        used = {c.name for c in tree.find_all(exp.Column) if c.name in windowed}
        if used:
            raise OsiError("E_WINDOWED_METRIC_COMPOSITION",
                           f"metric {name!r} composes the windowed metric(s) {', '.join(sorted(used))}; windowed "
                           f"metrics cannot be composed (D-031)")
        if has_window(tree):
            raise OsiError("E_WINDOWED_METRIC_COMPOSITION", f"metric {name!r}: a window inside a larger metric "
                                                            f"expression; make the window a metric of its own")
        built = _metric(name, tree, home, description, parsed, datasets, graph, where)
        out += built
        names[name] = built[-1][1].qualified
    return out, names


def _home(columns: list[exp.Column], hint: str | None, graph: _Graph, what: str) -> str:
    owners = sorted({c.table for c in columns if c.table})
    if not owners:
        if hint is None:
            raise OsiError("E_NAME_NOT_FOUND", f"{what}: qualify the fields it reads (`dataset.field`) or give "
                                               f"`dataset:` so its home dataset is known")
        return hint
    homes = [o for o in owners if all(graph.reaches(o, other) for other in owners)]
    if not homes:
        raise OsiError("E_NO_PATH", f"{what} reads {', '.join(owners)}, and none of them reaches the others")
    return hint if hint in homes else homes[0]


def _metric(name: str, tree: exp.Expr, hint: str | None, description: str,
            parsed: Mapping[str, tuple[exp.Expr, str | None, str]], datasets: Mapping[str, _Dataset],
            graph: _Graph, where: Where) -> list[tuple[str, Metric]]:
    """One OSI metric as ours: a simple metric when it is one aggregate, else a derived metric over a simple
    metric per aggregate in it (named `_name_N`) and the other metrics it names."""
    what = f"metric {name!r}"

    def simple(agg_name: str, node: exp.AggFunc) -> tuple[str, Metric]:
        columns = [c for c in node.find_all(exp.Column)]
        for column in columns:
            if not column.table or column.table not in datasets or column.name not in datasets[column.table].fields:
                raise OsiError("E_NAME_NOT_FOUND", f"{what}: no field {column.sql()!r}; write `dataset.field`")
        home = _home(columns, hint, graph, what)
        inner: exp.Expr | None = node.this
        agg = _AGGS.get(type(node))
        if agg is None:
            raise OsiError("E_UNSUPPORTED", f"{what}: aggregate {node.sql()!r} is not one of SUM, AVG, MIN, MAX, "
                                            f"COUNT, COUNT(DISTINCT ...), MEDIAN")
        if isinstance(inner, exp.Distinct):
            if agg != "count" or len(inner.expressions) != 1:
                raise OsiError("E_UNSUPPORTED", f"{what}: DISTINCT only goes with COUNT of one expression")
            agg, inner = "count_distinct", inner.expressions[0]
        if isinstance(inner, exp.Star):
            inner = None
        expr = None if inner is None else _local(datasets[home], inner, datasets, graph, what)
        return home, Metric(agg_name, home, "simple", agg=agg, expr=expr, description=description, where=where)

    if isinstance(tree, exp.AggFunc):
        return [simple(name, tree)]
    parts: list[tuple[str, Metric]] = []

    def rewrite(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.AggFunc):
            part = simple(f"_{name}_{len(parts) + 1}", node)
            parts.append(part)
            return exp.column(part[1].name, table=part[0])
        if isinstance(node, exp.Column):
            if node.name in parsed:
                ref_tree, ref_hint, ref_desc = parsed[node.name]
                owner = _metric(node.name, ref_tree, ref_hint, ref_desc, parsed, datasets, graph, where)[-1][0]
                return exp.column(node.name, table=owner)
            raise OsiError("E_NAME_NOT_FOUND", f"{what}: {node.sql()!r} is neither a metric nor inside an aggregate "
                                               f"(row-level fields must be aggregated in a metric)")
        return node

    body = tree.copy().transform(rewrite, copy=False)
    owners = [c.table for c in body.find_all(exp.Column)]
    if not owners:
        raise OsiError("E_INVALID_MODEL", f"{what}: {tree.sql()!r} reads no metric and no aggregate")
    home = hint or owners[0]
    return [*parts, (home, Metric(name, home, "derived", expr=body, description=description, where=where))]
