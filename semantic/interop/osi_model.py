"""OSI (Apache Ossie) core-spec models -> Model.

OSI names are global: a dataset becomes an entity of the same name, each field a dimension (facts too, since a
metric or a scalar query may read any field), each relationship a many-to-one relationship of its `from` dataset,
each metric a metric of its home dataset (the one whose rows its aggregate reads). Fields that reference other
fields become dimensions over those dimensions, so the planner expands the chain in dependency order; windowed
fields are computed over the dataset's rows first (the entity's `sql`), so a field reading one reads a column.

What OSI Foundation v0.1 defers is refused with its OSI error code at load time, never read approximately. Mapping
goes on past a refused dataset, field, relationship or metric, so one reading finds every refusal, each at the line
of its item when the document was read with lines (`semantic validate` lists them all; a query sees the first). A
metric that is valid OSI but has no counterpart here (a windowed metric) is kept as a refusal and reported when a
query asks for it, so the rest of the model stays usable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from semantic.errors import Issue, ModelError, QueryError
from semantic.model import Dimension, DimensionType, Entity, Metric, Model, Relationship, Where


class OsiError(QueryError):
    """A model or query refused with an OSI error code (Appendix C of the Foundation spec)."""

    def __init__(self, code: str, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.line = line  # where in the document, when it was read with lines (0: unknown)


def _line(node: Any, key: Any = None) -> int:
    """The line a mapping, or one of its keys, was written on (YAML read by the loader's line-keeping reader); 0
    for a document read without lines (JSON, a dict built in code)."""
    lines: dict[Any, int] = getattr(node, "lines", None) or {}
    own: int = getattr(node, "line", 0)
    return lines.get(key, own) if key is not None else own


class _Refusals:
    """What OSI refuses while mapping, in document order. `at(node)` runs one item's mapping: a refusal is noted
    at the item's line and the item is left out, so the mapping goes on to the next."""

    def __init__(self) -> None:
        self.found: list[OsiError] = []

    @contextmanager
    def at(self, node: Any = None, line: int = 0) -> Iterator[None]:
        try:
            yield
        except OsiError as error:
            error.line = error.line or line or _line(node)
            self.found.append(error)


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


def _keys(node: Any, allowed: tuple[str, ...], kind: str, refusals: _Refusals) -> dict[str, Any]:
    """`node` as a mapping; a key OSI Foundation v0.1 does not know is refused (at its line) and ignored, so the
    rest of the item is still read and checked."""
    name = node.get("name") if isinstance(node, dict) else None
    what = f"{kind} {name!r}" if isinstance(name, str) else kind if kind == "the model" else f"a {kind}"
    if not isinstance(node, dict):
        raise OsiError("E_INVALID_MODEL", f"{what} must be a mapping, got {node!r}")
    for key in node:
        if key not in allowed:
            with refusals.at(node):
                raise OsiError("E_DEFERRED_KEY_REJECTED", f"{what}: key {key!r} is not part of OSI Foundation "
                                                          f"v0.1 (deferred, §10); known keys: {', '.join(allowed)}",
                               _line(node, key))
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
    line: int
    lines: dict[str, int]  # field name -> line


def read(document: Any, source: str = "<osi>") -> OsiModel:
    """An OSI document (the flat Foundation form, or core-spec `semantic_model: [...]`) as an OsiModel; the first
    refusal raises OsiError with its code, validation's issues ModelError."""
    osi, refused = _map(document, source)
    if refused:
        raise refused[0]
    issues = _validate(osi.model)
    if issues:
        raise ModelError(issues)
    return osi


def read_issues(document: Any, source: str = "<osi>") -> tuple[OsiModel, list[Issue]]:
    """The OsiModel of what maps, and every problem at once: each refusal (with its OSI code and line), then what
    validating the Model finds. A document that is not a model at all raises OsiError."""
    osi, refused = _map(document, source)
    found = [Issue(f"[{e.code}] {e.message}", source, e.line) for e in refused]
    return osi, sorted(found, key=lambda issue: issue.line) + _validate(osi.model)


def _validate(model: Model) -> list[Issue]:
    from semantic.validate import validate  # validation reads the Model built here, as for our own YAML

    return list(validate(model))


def _map(document: Any, source: str) -> tuple[OsiModel, list[OsiError]]:
    if isinstance(document, dict) and "semantic_model" in document:
        models = document["semantic_model"]
        if not isinstance(models, list) or len(models) != 1:
            raise OsiError("E_INVALID_MODEL", "`semantic_model` must list exactly one model to read",
                           _line(document, "semantic_model"))
        document = models[0]
    refusals = _Refusals()
    doc = _keys(document, _MODEL_KEYS, "the model", refusals)
    datasets: dict[str, _Dataset] = {}
    for node in doc.get("datasets") or []:
        with refusals.at(node):
            dataset = _dataset(node, refusals)
            if dataset.name in datasets:
                raise OsiError("E_DUPLICATE_NAME", f"dataset {dataset.name!r} is declared twice")
            datasets[dataset.name] = dataset
    relationships = _relationships(doc.get("relationships") or [], datasets, source, refusals)
    graph = _Graph((src, rel.entity) for src, rel in relationships)
    parsed = _parse_metrics(doc.get("metrics") or [], datasets, refusals)
    windowed = _windowed_metrics(parsed, datasets, graph, refusals)
    entities = {}
    for name, ds in datasets.items():
        with refusals.at(line=ds.line):
            entities[name] = _entity(ds, datasets, graph, [r for s, r in relationships if s == name], source,
                                     refusals)
    metrics, names = _metrics(parsed, windowed, datasets, graph, source, refusals)
    for entity_name, metric in metrics:
        if entity_name in entities:
            entities[entity_name].metrics[metric.name] = metric
    refused = {name: OsiError("E_UNSUPPORTED", f"metric {name!r} is windowed: it is a value per row of "
                                               f"{home}, so ask for it as the field {home}.{name} of a scalar "
                                               f"query (`fields`)") for name, home in windowed.items()}
    model = Model(name=str(doc.get("name") or "osi"), entities=entities, dialect="duckdb",
                  description=str(doc.get("description") or "").strip(), source=source)
    return OsiModel(model, names, refused), refusals.found


def _dataset(node: Any, refusals: _Refusals) -> _Dataset:
    node = _keys(node, _DATASET_KEYS, "dataset", refusals)
    name = _name(node, "a dataset")
    what = f"dataset {name!r}"
    src = node.get("source")
    if not isinstance(src, str) or not src.strip():
        raise OsiError("E_INVALID_MODEL", f"{what} needs a `source` (a table)")
    if "primary_key" not in node:
        raise OsiError("E_INVALID_MODEL", f"{what} needs a `primary_key`: rows are counted by it")
    key = _columns(node["primary_key"], f"{what} primary_key")
    fields: dict[str, tuple[exp.Expr, DimensionType, str]] = {}
    lines: dict[str, int] = {}
    for child in node.get("fields") or []:
        with refusals.at(child):
            fname, field_ = _field(_keys(child, _FIELD_KEYS, f"field of {what}", refusals), name)
            if fname in fields:
                raise OsiError("E_DUPLICATE_NAME", f"field {name}.{fname} is declared twice")
            fields[fname], lines[fname] = field_, _line(child)
    return _Dataset(name, src, key, fields, str(node.get("description") or "").strip(), _line(node), lines)


def _field(child: dict[str, Any], dataset: str) -> tuple[str, tuple[exp.Expr, DimensionType, str]]:
    fname = _name(child, f"a field of dataset {dataset!r}")
    fwhat = f"field {dataset}.{fname}"
    text, dialect = expression_text(child.get("expression", fname), fwhat)
    tree = parse_expression(text, dialect, fwhat)
    if has_aggregate(tree):
        raise OsiError("E_AGGREGATE_IN_FIELD", f"{fwhat}: {text!r} aggregates; fields are row-level, so move "
                                               f"the aggregate to a top-level metric such as "
                                               f"SUM({dataset}.{fname})")
    dim: dict[str, Any] = child["dimension"] if isinstance(child.get("dimension"), dict) else {}
    datatype = str(child.get("datatype", "")).lower()
    kind: DimensionType = "time" if dim.get("is_time") else \
        _TYPES.get(datatype, "string") if datatype else _infer(tree, "dimension" in child)
    return fname, (tree, kind, str(child.get("description") or "").strip())


def _relationships(nodes: list[Any], datasets: Mapping[str, _Dataset], source: str, refusals: _Refusals
                   ) -> list[tuple[str, Relationship]]:
    found: list[tuple[str, Relationship]] = []
    seen: dict[tuple[str, str, tuple[str, ...]], str] = {}
    for node in nodes:
        with refusals.at(node):
            if (relationship := _relationship(node, datasets, seen, source, refusals)) is not None:
                found.append(relationship)
    return found


def _relationship(node: Any, datasets: Mapping[str, _Dataset], seen: dict[tuple[str, str, tuple[str, ...]], str],
                  source: str, refusals: _Refusals) -> tuple[str, Relationship] | None:
    node = _keys(node, _RELATIONSHIP_KEYS, "relationship", refusals)
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
        return None  # reflexive: parses, but role-qualified traversal is deferred (D-018); no join follows it
    return src, Relationship(dst, key, "many_to_one", False, Where(source, _line(node)))


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
            relationships: list[Relationship], source: str, refusals: _Refusals) -> Entity:
    deps = {name: _field_refs(dataset, tree) for name, (tree, _, _) in dataset.fields.items()}
    _check_acyclic(dataset.name, deps)
    windowed = {name for name, (tree, _, _) in dataset.fields.items() if has_window(tree)}
    dimensions: dict[str, Dimension] = {}
    where = Where(source, dataset.line)
    for name, (tree, kind, description) in dataset.fields.items():
        line = dataset.lines.get(name, dataset.line)
        with refusals.at(line=line):
            expr = exp.column(name) if name in windowed else _local(dataset, tree, datasets, graph,
                                                                    f"field {dataset.name}.{name}")
            dimensions[name] = Dimension(name, dataset.name, kind, expr, description, None, Where(source, line))
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


class _Parsed(NamedTuple):
    tree: exp.Expr
    home: str | None
    description: str
    line: int


_AGGS: dict[type[exp.Expr], str] = {exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max",
                                    exp.Count: "count", exp.Median: "median"}


def _parse_metrics(nodes: list[Any], datasets: Mapping[str, _Dataset], refusals: _Refusals) -> dict[str, _Parsed]:
    parsed: dict[str, _Parsed] = {}
    for node in nodes:
        with refusals.at(node):
            name, metric = _parse_metric(_keys(node, _METRIC_KEYS, "metric", refusals), datasets)
            if name in parsed:
                raise OsiError("E_DUPLICATE_NAME", f"metric {name!r} is declared twice")
            parsed[name] = metric
    return parsed


def _parse_metric(node: dict[str, Any], datasets: Mapping[str, _Dataset]) -> tuple[str, _Parsed]:
    name = _name(node, "a metric")
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
    return name, _Parsed(tree, home, str(node.get("description") or "").strip(), _line(node))


def _windowed_metrics(parsed: Mapping[str, _Parsed], datasets: Mapping[str, _Dataset], graph: _Graph,
                      refusals: _Refusals) -> dict[str, str]:
    """A metric that is a window function is a value per row of its home dataset (D-028): it joins that dataset's
    fields, computed with its windowed fields. Returns name -> home dataset."""
    windowed: dict[str, str] = {}
    for name, (tree, hint, description, line) in parsed.items():
        if not isinstance(tree, exp.Window):
            continue
        with refusals.at(line=line):
            home = _home(list(tree.find_all(exp.Column)), hint, graph, f"metric {name!r}")
            if home not in datasets:
                raise OsiError("E_NAME_NOT_FOUND", f"metric {name!r}: no dataset {home!r}")
            dataset = datasets[home]
            if name in dataset.fields:
                raise OsiError("E_DUPLICATE_NAME", f"metric {name!r} has the name of a field of {home!r}")
            dataset.fields[name], dataset.lines[name] = (tree, _infer(tree, False), description), line
            windowed[name] = home
    return windowed


def _metrics(parsed: Mapping[str, _Parsed], windowed: Mapping[str, str], datasets: Mapping[str, _Dataset],
             graph: _Graph, source: str, refusals: _Refusals) -> tuple[list[tuple[str, Metric]], dict[str, str]]:
    out: list[tuple[str, Metric]] = []
    names: dict[str, str] = {}
    for name, metric in parsed.items():
        if name not in windowed:
            with refusals.at(line=metric.line):
                built = _metric(name, metric, windowed, parsed, datasets, graph, source)
                out += built
                names[name] = built[-1][1].qualified
    return out, names


def _metric(name: str, metric: _Parsed, windowed: Mapping[str, str], parsed: Mapping[str, _Parsed],
            datasets: Mapping[str, _Dataset], graph: _Graph, source: str) -> list[tuple[str, Metric]]:
    """One OSI metric as ours: a simple metric when it is one aggregate, else a derived metric over a simple
    metric per aggregate in it (named `_name_N`) and the other metrics it names."""
    tree, hint, description = metric.tree, metric.home, metric.description
    what, where = f"metric {name!r}", Where(source, metric.line)
    used = {c.name for c in tree.find_all(exp.Column) if c.name in windowed}
    if used:
        raise OsiError("E_WINDOWED_METRIC_COMPOSITION",
                       f"metric {name!r} composes the windowed metric(s) {', '.join(sorted(used))}; windowed "
                       f"metrics cannot be composed (D-031)")
    if has_window(tree):
        raise OsiError("E_WINDOWED_METRIC_COMPOSITION", f"metric {name!r}: a window inside a larger metric "
                                                        f"expression; make the window a metric of its own")

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
                owner = _metric(node.name, parsed[node.name], windowed, parsed, datasets, graph, source)[-1][0]
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
