"""YAML -> Model. Keeps file:line on every node, parses every expression with sqlglot, and reports every problem
found (here and in `validate.py`) at once as one `ModelError`."""

from __future__ import annotations

import re
from collections.abc import Hashable
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlglot
import yaml
from sqlglot import exp

from semantic.errors import Issue, ModelError, QueryError, did_you_mean
from semantic.model import (
    AGGREGATIONS,
    DIMENSION_TYPES,
    GRAINS,
    STORAGES,
    CachePolicy,
    Dimension,
    Entity,
    Feature,
    Metric,
    Model,
    Period,
    Policy,
    Relationship,
    Where,
)

_DURATION = re.compile(r"^\s*(\d+)\s*(second|minute|hour|day|week)s?\s*$", re.IGNORECASE)
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Node(dict[Hashable, Any]):
    """A YAML mapping that remembers the line it started on and the line of each key. Its keys are whatever YAML
    read (`1:` is an int); the reader checks them."""

    line: int = 0
    lines: dict[Hashable, int]


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that adds line numbers to mappings and notes every key given twice in one mapping (plain YAML
    keeps the last silently)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str]] = []  # (line, key)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> _Node:
        lines: dict[Hashable, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, Hashable) and key in lines:
                first = "on this line" if lines[key] == line else f"first at line {lines[key]}"
                self.duplicates.append((line, f"key {key!r} is given twice in one mapping ({first}); YAML would "
                                              f"keep only the last, so remove one"))
            elif isinstance(key, Hashable):
                lines[key] = line
        mapping = _Node(super().construct_mapping(node, deep=deep))
        mapping.line = node.start_mark.line + 1
        mapping.lines = lines
        return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    lambda loader, node: loader.construct_mapping(node, deep=True),  # type: ignore[arg-type]
)


def _read_yaml(path: Path) -> tuple[Any, list[Issue]]:
    """One YAML document with line numbers, and the problems of the file itself (bad YAML, duplicate keys)."""
    loader = _LineLoader(path.read_text())
    try:
        return loader.get_single_data(), [Issue(m, str(path), line) for line, m in loader.duplicates]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        return None, [Issue(f"invalid YAML: {getattr(error, 'problem', error)}", str(path), line)]
    finally:
        loader.dispose()


def parse_duration(text: Any) -> timedelta | None:
    """An exact duration such as "30 days"; None when the text is not one.

    >>> parse_duration("7 days")
    datetime.timedelta(days=7)
    """
    match = _DURATION.match(str(text))
    if not match:
        return None
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2).lower()])


_PERIOD = re.compile(r"^\s*(\d+)\s*(second|minute|hour|day|week|month|quarter|year)s?\s*$", re.IGNORECASE)


def parse_period(text: Any) -> Period | None:
    """A calendar length such as "1 month"; None when the text is not one.

    >>> parse_period("3 Months")
    Period(count=3, unit='month')
    """
    match = _PERIOD.match(str(text))
    if not match or int(match.group(1)) < 1:
        return None
    return Period(int(match.group(1)), match.group(2).lower())


class _Reader:
    """Turns YAML mappings into model nodes, collecting issues instead of stopping at the first."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.issues: list[Issue] = []
        self.file = "<model>"

    def issue(self, node: Any, message: str) -> None:
        self.issues.append(Issue(message, self.file, getattr(node, "line", 0)))

    def where(self, node: Any) -> Where:
        return Where(self.file, getattr(node, "line", 0))

    def keys(self, node: Any, allowed: tuple[str, ...], what: str) -> bool:
        if not isinstance(node, dict):
            self.issue(node, f"{what} must be a mapping, got {type(node).__name__}")
            return False
        for key in node:
            if key not in allowed:
                line = getattr(node, "lines", {}).get(key, getattr(node, "line", 0))
                self.issues.append(Issue(f"unknown key {key!r} in {what}; expected one of {', '.join(allowed)}."
                                         f"{did_you_mean(str(key), allowed)}", self.file, line))
        return True

    def name(self, node: dict[str, Any], what: str) -> str | None:
        name = node.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            self.issue(node, f"{what} needs a `name` made of letters, digits and underscores, got {name!r}")
            return None
        return name

    def sql(self, node: Any, text: Any, what: str) -> exp.Expr | None:
        if not isinstance(text, str | int | float) or isinstance(text, bool) or str(text).strip() == "":
            self.issue(node, f"{what} must be a SQL expression string, got {text!r}")
            return None
        try:
            parsed = sqlglot.parse_one(str(text), read=self.dialect)
        except sqlglot.errors.ParseError as error:
            detail = error.errors[0]["description"] if error.errors else str(error)
            self.issue(node, f"{what}: cannot parse SQL {text!r}: {detail}")
            return None
        if parsed.find(exp.Query) is not None:
            self.issue(node, f"{what}: subqueries are not allowed in expressions: {text!r}")
            return None
        return parsed

    def columns(self, node: Any, value: Any, what: str) -> tuple[str, ...]:
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and _NAME.match(v) for v in values):
            self.issue(node, f"{what} must be a column name or a list of them, got {value!r}")
            return ()
        return tuple(values)

    def entity(self, node: Any) -> Entity | None:
        allowed = ("name", "table", "sql", "key", "time", "created", "description", "dimensions", "metrics",
                   "relationships", "features", "policies", "cache")
        if not self.keys(node, allowed, "entity"):
            return None
        name = self.name(node, "an entity")
        if name is None:
            return None
        if ("table" in node) == ("sql" in node):
            self.issue(node, f"entity {name!r} needs exactly one of `table` or `sql`")
        if "sql" in node:
            try:
                sqlglot.parse_one(str(node["sql"]), read=self.dialect)
            except sqlglot.errors.ParseError as error:
                self.issue(node, f"entity {name!r}: cannot parse `sql`: {error.errors[0]['description']}")
        if "key" not in node:
            self.issue(node, f"entity {name!r} needs a `key` (a column or a list of columns)")
        key = self.columns(node, node.get("key", "?"), f"entity {name!r} key") if "key" in node else ()

        dimensions: dict[str, Dimension] = {}
        for column in key:  # key columns are dimensions of the entity automatically
            dimensions[column] = Dimension(column, name, "string", exp.column(column), where=self.where(node))
        for child in self.list(node, "dimensions"):
            dim = self.dimension(child, name)
            if dim is None:
                continue
            if dim.name in dimensions and dim.name not in key:
                self.issue(child, f"dimension {name}.{dim.name} is declared twice")
            dimensions[dim.name] = dim
        metrics: dict[str, Metric] = {}
        for child in self.list(node, "metrics"):
            metric = self.metric(child, name)
            if metric is None:
                continue
            if metric.name in metrics:
                self.issue(child, f"metric {name}.{metric.name} is declared twice")
            if metric.name in dimensions:
                self.issue(child, f"{name}.{metric.name} is both a dimension and a metric; rename one")
            metrics[metric.name] = metric
        features: dict[str, Feature] = {}
        for child in self.list(node, "features"):
            feature = self.feature(child, name)
            if feature is None:
                continue
            if feature.name in features:
                self.issue(child, f"feature {name}.{feature.name} is declared twice")
            features[feature.name] = feature
        relationships = tuple(
            r for r in (self.relationship(child, name) for child in self.list(node, "relationships")) if r
        )
        for attr in ("time", "created"):
            if attr in node and not isinstance(node[attr], str):
                self.issue(node, f"entity {name!r}: `{attr}` must name a dimension, got {node[attr]!r}")
        return Entity(
            name=name,
            key=key,
            table=node.get("table"),
            sql=str(node["sql"]) if "sql" in node else None,
            time=node.get("time"),
            created=node.get("created"),
            description=str(node.get("description", "")).strip(),
            dimensions=dimensions,
            metrics=metrics,
            relationships=relationships,
            features=features,
            where=self.where(node),
            policies=tuple(p for p in (self.policy(child, name) for child in self.list(node, "policies")) if p),
            cache=self.cache(node.get("cache"), f"the cache of {name!r}", entity=True),
        )

    def cache(self, node: Any, what: str, entity: bool) -> CachePolicy:
        """`cache: {ttl: 300, stale_while_revalidate: 60}` at the top; `{ttl, refresh_key, refresh_every}` per
        entity. Durations are seconds."""
        if node is None:
            return CachePolicy()
        allowed = ("ttl", "refresh_key", "refresh_every") if entity else ("ttl", "stale_while_revalidate")
        if not self.keys(node, allowed, what):
            return CachePolicy()
        seconds: dict[str, float] = {}
        for key in ("ttl", "stale_while_revalidate", "refresh_every"):
            value = node.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                self.issue(node, f"{what}: `{key}` must be a number of seconds ≥ 0, got {value!r}")
                continue
            seconds[key] = float(value)
        refresh = None
        text = node.get("refresh_key")
        if text is not None:
            try:
                refresh = sqlglot.parse_one(str(text), read=self.dialect)
            except sqlglot.errors.ParseError as error:
                detail = error.errors[0]["description"] if error.errors else str(error)
                self.issue(node, f"{what}: cannot parse the refresh_key {text!r}: {detail}")
            if refresh is not None and not isinstance(refresh, exp.Query):
                example = "`select max(updated_at) from orders`"
                self.issue(node, f"{what}: the refresh_key must be a query returning one value, such as "
                                 f"{example}; got {text!r}")
                refresh = None
        return CachePolicy(seconds.get("ttl"), seconds.get("stale_while_revalidate"), refresh,
                           seconds.get("refresh_every", 10.0))

    def policy(self, node: Any, entity: str) -> Policy | None:
        """`{roles: [...], rows: "<filter with {{ user.x }}>", hide: [...]}`; names are checked in `access.py`."""
        from semantic.access import parse_rows

        if not self.keys(node, ("roles", "rows", "hide", "description"), f"a policy of {entity!r}"):
            return None
        roles, hide = node.get("roles"), node.get("hide", [])
        if not isinstance(roles, list) or not roles or not all(isinstance(r, str) and r for r in roles):
            self.issue(node, f"a policy of {entity!r} needs `roles`: a list of role names, or [\"*\"] for every "
                             f"role (anonymous included), got {roles!r}")
            return None
        if not isinstance(hide, list) or not all(isinstance(h, str) for h in hide):
            self.issue(node, f"a policy of {entity!r}: `hide` must be a list of member names, got {hide!r}")
            hide = []
        rows = None
        if node.get("rows") is not None:
            try:
                rows = parse_rows(node["rows"])
            except QueryError as error:
                self.issue(node, f"a policy of {entity!r}: rows: {error.message}")
                return None
        return Policy(tuple(roles), rows, tuple(hide), self.where(node))

    def list(self, node: dict[str, Any], key: str) -> list[Any]:
        value = node.get(key) or []
        if not isinstance(value, list):
            self.issue(node, f"`{key}` must be a list")
            return []
        return value

    def dimension(self, node: Any, entity: str) -> Dimension | None:
        if not self.keys(node, ("name", "type", "expr", "description", "grain", "storage"), "dimension"):
            return None
        name = self.name(node, f"a dimension of {entity!r}")
        if name is None:
            return None
        kind = node.get("type", "string")
        if kind not in DIMENSION_TYPES:
            self.issue(node, f"dimension {entity}.{name}: unknown type {kind!r}; use one of "
                             f"{', '.join(DIMENSION_TYPES)}.{did_you_mean(str(kind), DIMENSION_TYPES)}")
            kind = "string"
        grain = node.get("grain")
        if grain is not None and (grain not in GRAINS or kind != "time"):
            self.issue(node, f"dimension {entity}.{name}: `grain` must be one of {', '.join(GRAINS)} on a time "
                             f"dimension, got {grain!r}.{did_you_mean(str(grain), GRAINS)}")
            grain = None
        storage = node.get("storage")
        if storage is not None and (storage not in STORAGES or kind != "time"):
            self.issue(node, f"dimension {entity}.{name}: `storage` must be one of {', '.join(STORAGES)} on a time "
                             f"dimension, got {storage!r}.{did_you_mean(str(storage), STORAGES)}")
            storage = None
        expr = self.sql(node, node["expr"], f"dimension {entity}.{name} expr") if "expr" in node else None
        return Dimension(name, entity, kind, expr if expr is not None else exp.column(name),
                         str(node.get("description", "")).strip(), grain, self.where(node), storage)

    def metric(self, node: Any, entity: str) -> Metric | None:
        allowed = ("name", "agg", "expr", "filter", "percentile", "description", "metric", "window",
                   "grain_to_date", "offset", "semi_additive")
        if not self.keys(node, allowed, "metric"):
            return None
        name = self.name(node, f"a metric of {entity!r}")
        if name is None:
            return None
        where, description = self.where(node), str(node.get("description", "")).strip()
        if "metric" in node or any(k in node for k in ("window", "grain_to_date", "offset")):
            return self.windowed_metric(node, entity, name, description, where)
        if "agg" not in node:
            if "expr" not in node:
                self.issue(node, f"metric {entity}.{name} needs `agg` (a simple metric) or `expr` (derived)")
                return None
            expr = self.sql(node, node["expr"], f"metric {entity}.{name} expr")
            return Metric(name, entity, "derived", expr=expr, description=description, where=where)
        agg = node["agg"]
        if agg not in AGGREGATIONS:
            self.issue(node, f"metric {entity}.{name}: unknown agg {agg!r}; use one of {', '.join(AGGREGATIONS)}."
                             f"{did_you_mean(str(agg), AGGREGATIONS)}")
            # keep the metric, so metrics built on it are not reported as unknown too
        expr = self.sql(node, node["expr"], f"metric {entity}.{name} expr") if "expr" in node else None
        if expr is None and agg != "count":
            self.issue(node, f"metric {entity}.{name}: agg {agg!r} needs an `expr`")
        percentile = node.get("percentile")
        if agg == "percentile" and not (isinstance(percentile, int | float) and 0 <= percentile <= 1):
            self.issue(node, f"metric {entity}.{name}: `percentile` must be a number between 0 and 1")
        filt = self.sql(node, node["filter"], f"metric {entity}.{name} filter") if "filter" in node else None
        semi = node.get("semi_additive")
        if semi not in (None, "last", "first"):
            self.issue(node, f"metric {entity}.{name}: `semi_additive` must be last or first, got {semi!r}")
            semi = None
        return Metric(name, entity, "simple", agg=agg, expr=expr, filter=filt,
                      percentile=float(percentile) if agg == "percentile" else None, semi_additive=semi,
                      description=description, where=where)

    def windowed_metric(self, node: Any, entity: str, name: str, description: str, where: Where) -> Metric | None:
        """A cumulative (`window` or `grain_to_date`) or period-over-period (`offset`) metric over `metric`."""
        what = f"metric {entity}.{name}"
        base = node.get("metric")
        if not isinstance(base, str) or not _NAME.match(base):
            self.issue(node, f"{what}: `metric` must name a metric of {entity!r} (the one to accumulate or offset)")
            return None
        for key in ("agg", "expr", "filter", "percentile", "semi_additive"):
            if key in node:
                self.issue(node, f"{what}: `{key}` does not go with `metric`; put it on the base metric {base!r}")
        kinds = [k for k in ("window", "grain_to_date", "offset") if k in node]
        if len(kinds) != 1:
            self.issue(node, f"{what}: give exactly one of `window` (e.g. '7 days' or 'unbounded'), "
                             f"`grain_to_date` (e.g. month) or `offset` (e.g. '1 year'), got {kinds or 'none'}")
            return None
        kind = kinds[0]
        if kind == "grain_to_date":
            grain = node[kind]
            if grain not in GRAINS:
                self.issue(node, f"{what}: `grain_to_date` must be one of {', '.join(GRAINS)}, got {grain!r}."
                                 f"{did_you_mean(str(grain), GRAINS)}")
                return None
            return Metric(name, entity, "cumulative", base=base, grain_to_date=grain, description=description,
                          where=where)
        if kind == "window" and str(node[kind]).strip().lower() == "unbounded":
            return Metric(name, entity, "cumulative", base=base, description=description, where=where)
        period = parse_period(node[kind])
        if period is None:
            self.issue(node, f"{what}: `{kind}` must be a length such as '7 days', '1 month' or '1 year'"
                             f"{' or unbounded' if kind == 'window' else ''}, got {node[kind]!r}")
            return None
        if kind == "window":
            return Metric(name, entity, "cumulative", base=base, window=period, description=description,
                          where=where)
        return Metric(name, entity, "offset", base=base, offset=period, description=description, where=where)

    def relationship(self, node: Any, entity: str) -> Relationship | None:
        if not self.keys(node, ("entity", "key", "type", "required", "description"), "relationship"):
            return None
        target = node.get("entity")
        if not isinstance(target, str):
            self.issue(node, f"a relationship of {entity!r} needs `entity` (the entity it points to)")
            return None
        kind = node.get("type", "many_to_one")
        if kind not in ("many_to_one", "one_to_one"):
            self.issue(node, f"relationship {entity} -> {target}: `type` must be many_to_one or one_to_one, got "
                             f"{kind!r} (declare a one-to-many relationship on the other entity, as many_to_one)")
            return None
        key = self.columns(node, node.get("key"), f"relationship {entity} -> {target} key")
        required = node.get("required", False)
        if not isinstance(required, bool):
            self.issue(node, f"relationship {entity} -> {target}: `required` must be true or false, got {required!r}")
            required = False
        return Relationship(target, key, kind, required, self.where(node))

    def feature(self, node: Any, entity: str) -> Feature | None:
        allowed = ("name", "metric", "window", "latest", "ttl", "dimension", "expr", "description")
        if not self.keys(node, allowed, "feature"):
            return None
        name = self.name(node, f"a feature of {entity!r}")
        if name is None:
            return None
        kinds = [k for k in ("metric", "latest", "dimension", "expr") if k in node]
        if len(kinds) != 1:
            self.issue(node, f"feature {entity}.{name} needs exactly one of `metric`, `latest`, `dimension`, "
                             f"`expr`, got {kinds or 'none'}")
            return None
        durations: dict[str, timedelta | None] = {}
        for key in ("window", "ttl"):
            durations[key] = None
            if key in node:
                durations[key] = parse_duration(node[key])
                if durations[key] is None:
                    self.issue(node, f"feature {entity}.{name}: `{key}` must be a duration such as '30 days' "
                                     f"(seconds, minutes, hours, days, weeks), got {node[key]!r}")
        if ("window" in node and kinds != ["metric"]) or ("ttl" in node and kinds != ["latest"]):
            self.issue(node, f"feature {entity}.{name}: `window` goes with `metric`, `ttl` with `latest`")
        kind = {"metric": "metric", "latest": "latest", "dimension": "dimension", "expr": "derived"}[kinds[0]]
        description, where = str(node.get("description", "")).strip(), self.where(node)
        if kind == "derived":
            expr = self.sql(node, node["expr"], f"feature {entity}.{name} expr")
            return Feature(name, entity, "derived", expr=expr, description=description, where=where)
        ref = node[kinds[0]]
        if not isinstance(ref, str):
            self.issue(node, f"feature {entity}.{name}: `{kinds[0]}` must be a name, got {ref!r}")
            return None
        return Feature(name, entity, kind, ref=ref, window=durations["window"],  # type: ignore[arg-type]
                       ttl=durations["ttl"], description=description, where=where)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        if not files:
            raise ModelError([Issue(f"no *.yaml files in folder {path}", str(path))])
        return files
    if not path.exists():
        raise ModelError([Issue(f"model file {path} does not exist", str(path))])
    return [path]


VERSIONS = (1,)  # the model format versions this release reads
_MODEL_KEYS = ("version", "name", "dialect", "warehouse", "description", "entities", "cache")


def load(path: str | Path) -> Model:
    """Load and validate a model from a YAML file or a folder of them; raise ModelError listing every problem."""
    model, issues = read(path)
    if issues:
        raise ModelError(issues)
    return model


def read(path: str | Path) -> tuple[Model, list[Issue]]:
    """A model from a YAML file or a folder of them, and every problem found in it (sorted by file and line). The
    model holds every part that could be read, so the data checks can run on a model with problems too. Raises
    ModelError only when there is nothing to read."""
    from semantic.validate import validate  # validation reads the Model this module builds

    root = Path(path)
    documents: list[tuple[str, Any]] = []
    issues: list[Issue] = []
    for yaml_path in _files(root):
        doc, problems = _read_yaml(yaml_path)
        issues += problems
        if doc is None and not problems:
            issues.append(Issue("the model file is empty; a model has at least `version: 1` and `entities:`",
                                str(yaml_path), 1))
        documents.append((str(yaml_path), doc))
    settings: dict[str, Any] = {}
    for file, doc in documents:
        if isinstance(doc, dict):
            for key in ("name", "dialect", "warehouse", "description", "version"):
                if key in doc:
                    settings.setdefault(key, doc[key])
                    settings.setdefault("_file_" + key, file)
            if "version" in doc and (doc["version"] not in VERSIONS or isinstance(doc["version"], bool)):
                issues.append(Issue(f"unknown model format version {doc['version']!r}; this release reads version "
                                    f"{', '.join(map(str, VERSIONS))}", file,
                                    getattr(doc, "lines", {}).get("version", getattr(doc, "line", 0))))
    dialect = str(settings.get("dialect", "duckdb"))
    reader = _Reader(dialect)
    try:
        sqlglot.Dialect.get_or_raise(dialect)
    except ValueError:
        reader.issues.append(Issue(f"unknown dialect {dialect!r}", settings.get("_file_dialect", str(root))))
        reader.dialect = "duckdb"
    entities: dict[str, Entity] = {}
    policy = CachePolicy()
    for file, doc in documents:
        reader.file = file
        if isinstance(doc, dict) and "cache" in doc:
            policy = reader.cache(doc["cache"], "the model's cache", entity=False)
        if doc is None:
            continue
        if not reader.keys(doc, _MODEL_KEYS, "the model (top level)"):
            continue
        for node in reader.list(doc, "entities"):
            entity = reader.entity(node)
            if entity is None:
                continue
            if entity.name in entities:
                reader.issue(node, f"entity {entity.name!r} is declared twice "
                                   f"(first at {entities[entity.name].where})")
                continue
            entities[entity.name] = entity
    warehouse = settings.get("warehouse")
    if isinstance(warehouse, str):
        warehouse = _resolve_relative(warehouse, Path(settings["_file_warehouse"]).parent)
    model = Model(
        name=str(settings.get("name", root.stem)),
        entities=entities,
        dialect=reader.dialect,
        warehouse=warehouse if isinstance(warehouse, str) else None,
        description=str(settings.get("description", "")).strip(),
        source=str(root),
        cache=policy,
    )
    issues += reader.issues
    issues += validate(model)
    if not issues:  # policy filters are planned, which needs an otherwise valid model
        from semantic.access import check_policies

        issues += check_policies(model)
    return model, sorted(issues, key=lambda i: (i.file, i.line))


def _resolve_relative(url: str, base: Path) -> str:
    """duckdb:///shop.duckdb is relative to the model file; duckdb:////abs/path and :memory: stay as they are."""
    prefix = "duckdb:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url[len(prefix):] not in ("", ":memory:"):
        return prefix + str((base / url[len(prefix):]).resolve())
    return url
