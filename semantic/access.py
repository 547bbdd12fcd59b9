"""Who reads: the access context, and each reader's view of the model under the model's policies.

A policy (`model.Policy`) names roles, the rows they see and the members hidden from them. For one reader the
policies of an entity resolve to an `Effect`: forbidden (no policy names one of their roles, or a policy needs an
attribute they lack), every row, or the union of the matching policies' row filters with the reader's attribute
values as literals; and the members every matching policy hides. A `View` is the model as that reader may see it:
hidden members removed (and every member built on one), each filtered entity's rows replaced by a SELECT of the
rows they may see, each forbidden entity marked. `sql.joins.source_of` reads those marks, so every statement built
from the view (queries, joins, features, training sets, snapshots, compile) holds to them.

Views are shared by fingerprint: two readers whose policies resolve to the same effects (two analysts of one region)
get one view, one plan cache and one result cache scope; readers with different effects never share.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cachetools import LRUCache
from sqlglot import exp

from semantic.errors import ForbiddenError, Issue, QueryError, did_you_mean
from semantic.model import Entity, Feature, Metric, Model, Policy
from semantic.plan.planner import plan
from semantic.plan.scope import ident
from semantic.query import Filter, SemanticQuery, parse_filter
from semantic.sql.joins import joined

EVERY_ROLE = "*"
USER = "__user__"  # `{{ user.region }}` parses as the column `__user__.region`, replaced by a literal per reader
_PLACEHOLDER = re.compile(r"\{\{\s*user\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_ANY_PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\{\{|\}\}")


def _freeze(value: Any) -> Any:
    """A claim value as hashable data: lists become tuples, objects sorted pairs."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    return value


@dataclass(frozen=True)
class Access:
    """Who is reading: a principal, their roles and their attributes (`user.<name>` in policies).

    `trusted` is the local user of the command line and of Python code: policies do not apply to them.
    """

    principal: str | None = None
    roles: frozenset[str] = frozenset()
    attributes: tuple[tuple[str, Any], ...] = ()  # sorted by name; values frozen (lists as tuples)
    trusted: bool = False

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Access:
        """A context from token claims (or `--as` JSON): `sub` the principal, `roles` a list of strings, every
        claim an attribute.

        >>> Access.from_claims({"sub": "ana", "roles": ["analyst"], "region": "EU"}).attribute("region")
        'EU'
        """
        if not isinstance(claims, Mapping):
            raise QueryError(f"claims must be a JSON object, got {type(claims).__name__}")
        roles = claims.get("roles", [])
        if not isinstance(roles, list | tuple) or not all(isinstance(r, str) for r in roles):
            raise QueryError(f"the `roles` claim must be a list of strings, got {roles!r}")
        sub = claims.get("sub")
        return cls(str(sub) if sub is not None else None, frozenset(roles),
                   tuple(sorted((str(k), _freeze(v)) for k, v in claims.items())))

    def attribute(self, name: str) -> Any:
        """The attribute's value; None when the reader has none (a JSON null counts as none)."""
        for key, value in self.attributes:
            if key == name:
                return value
        return None

    def __str__(self) -> str:
        who = "trusted local user" if self.trusted else (self.principal or "anonymous")
        return f"{who} (roles: {', '.join(sorted(self.roles)) or 'none'})"


TRUSTED = Access("local", trusted=True)
ANONYMOUS = Access()


# -- policies as written ---------------------------------------------------------------------------------------


def parse_rows(text: str) -> exp.Expr:
    """A policy's `rows`: the filter language, where `{{ user.x }}` stands for a value of the reader's.

    >>> parse_rows("customer.region = {{ user.region }}").sql()
    'customer.region = __user__.region'
    """
    if not isinstance(text, str):
        raise QueryError(f"`rows` must be a filter string, got {text!r}")
    if USER in text:
        raise QueryError(f"{USER} is reserved; write {{{{ user.name }}}} for a value of the reader's")
    substituted = _PLACEHOLDER.sub(lambda m: f" {USER}.{m.group(1)} ", text)
    unknown = _ANY_PLACEHOLDER.search(substituted)
    if unknown:
        raise QueryError(f"unknown placeholder {unknown.group(0)!r} in {text!r}; write {{{{ user.name }}}} "
                         f"(name: a claim of the reader's token)")
    tree = parse_filter(substituted)
    for literal in tree.find_all(exp.Literal):
        if literal.is_string and USER in literal.this:
            raise QueryError(f"{text!r}: a placeholder is a value by itself; do not quote it")
    return tree


def attributes_of(policy: Policy) -> tuple[str, ...]:
    """The reader's attributes a policy reads, in order of first use."""
    if policy.rows is None:
        return ()
    return tuple(dict.fromkeys(c.name for c in policy.rows.find_all(exp.Column) if c.table == USER))


def check_policies(model: Model) -> list[Issue]:
    """Every policy's roles, hidden members and row filter, checked against the model (file:line each)."""
    issues: list[Issue] = []
    for entity in model.entities.values():
        for policy in entity.policies:
            issues += _check_policy(model, entity, policy)
    return issues


def _check_policy(model: Model, entity: Entity, policy: Policy) -> list[Issue]:
    issues: list[Issue] = []

    def issue(message: str) -> None:
        issues.append(Issue(f"policy of {entity.name!r}: {message}", policy.where.file, policy.where.line))

    members = {*entity.dimensions, *entity.metrics, *entity.features}
    structural = {*entity.key, *(n for n in (entity.time, entity.created) if n and "." not in n)}
    for name in policy.hide:
        if name not in members:
            issue(f"hides {name!r}, which is no dimension, metric or feature of {entity.name!r}."
                  f"{did_you_mean(name, members)}")
        elif name in structural:
            issue(f"cannot hide {name!r}: it is the entity's key, time or created dimension (every read "
                  f"of the entity needs it)")
    if policy.rows is not None:
        try:
            _rows_select(model, entity, policy.rows.transform(_as_null))
        except QueryError as error:
            issue(f"rows: {error.message}")
    return issues


def _as_null(node: exp.Expr) -> exp.Expr:
    """For checking a filter's names at load time, when no reader's values are known."""
    return exp.Null() if isinstance(node, exp.Column) and node.table == USER else node


# -- a reader's effect per entity ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """What an entity's policies mean for one reader. `rows` None: every row; else the matching row policies
    (their index) with the attribute values they read."""

    rows: tuple[tuple[int, tuple[tuple[str, Any], ...]], ...] | None = None
    hidden: frozenset[str] = frozenset()
    forbidden: str | None = None


UNRESTRICTED = Effect()


def effect(entity: Entity, access: Access) -> Effect:
    if not entity.policies or access.trusted:
        return UNRESTRICTED
    matching = [(i, p) for i, p in enumerate(entity.policies)
                if EVERY_ROLE in p.roles or access.roles.intersection(p.roles)]
    if not matching:
        roles = ", ".join(sorted(access.roles)) or "none"
        return Effect(forbidden=f"entity {entity.name!r} is not readable with your roles ({roles})")
    rows: list[tuple[int, tuple[tuple[str, Any], ...]]] = []
    every_row = False
    for index, policy in matching:
        values = []
        for name in attributes_of(policy):
            value = access.attribute(name)
            if not _usable(value):
                return Effect(forbidden=f"reading {entity.name!r} needs the attribute user.{name} (a string, "
                                        f"number or boolean, or a list of them), which your credentials do not "
                                        f"carry")
            values.append((name, value))
        if policy.rows is None:
            every_row = True
        rows.append((index, tuple(values)))
    hidden = frozenset.intersection(*(frozenset(p.hide) for _, p in matching))
    return Effect(None if every_row else tuple(rows), hidden)


def _usable(value: Any) -> bool:
    scalar = (str, int, float, bool)
    return isinstance(value, scalar) or (isinstance(value, tuple) and bool(value)
                                         and all(isinstance(v, scalar) for v in value))


def _literal(value: Any) -> exp.Expr:
    """A reader's value as a sqlglot literal: never text pasted into SQL."""
    return exp.convert(value)


def substitute(tree: exp.Expr, values: Mapping[str, Any]) -> exp.Expr:
    """The filter with each `{{ user.x }}` replaced by the literal of its value; a list fills an `in (...)`.

    >>> substitute(parse_rows("customer.region = {{ user.region }}"), {"region": "EU' OR '1'='1"}).sql()
    "customer.region = 'EU'' OR ''1''=''1'"
    """
    tree = tree.copy()
    for node in list(tree.find_all(exp.In)):
        items = node.expressions
        if len(items) == 1 and isinstance(items[0], exp.Column) and items[0].table == USER:
            value = values[items[0].name]
            listed = value if isinstance(value, tuple) else (value,)
            node.set("expressions", [_literal(v) for v in listed])
    for column in list(tree.find_all(exp.Column)):
        if column.table == USER:
            value = values[column.name]
            if isinstance(value, tuple):
                raise ForbiddenError(f"the attribute user.{column.name} is a list, but the policy compares it "
                                     f"with one value")
            column.replace(_literal(value))
    return tree


# -- a reader's view of the model ------------------------------------------------------------------------------


def _rows_select(model: Model, entity: Entity, condition: exp.Expr) -> exp.Select:
    """SELECT the entity's columns from its rows that satisfy the condition (the filter language, names resolved
    along many-to-one relationships from the entity, joined rows read as stored)."""
    query = SemanticQuery(dimensions=tuple(f"{entity.name}.{k}" for k in entity.key), where=Filter.of(condition))
    aggregate = plan(model, query).aggregates[0]
    if aggregate.entity != entity.name:
        raise QueryError(f"the filter must be about {entity.name!r}: its own dimensions and those of entities it "
                         f"reaches along many-to-one relationships")
    alias = ident(entity.name)
    select = joined(exp.select(exp.Column(this=exp.Star(), table=alias)), model, entity, aggregate.joins)
    if aggregate.where is not None:
        select = select.where(aggregate.where, copy=False)
    return select


def _references(entity: Entity, item: Metric | Feature | None, tree: exp.Expr | None, kind: str
                ) -> Iterable[tuple[str, str]]:
    """(entity, member name) pairs an expression names: `e.d` related members, bare names for `kind` members of
    this entity (metrics of a derived metric, features of a derived feature)."""
    if tree is None:
        return
    for column in tree.find_all(exp.Column):
        if column.table:
            yield column.table, column.name
        elif kind:
            yield entity.name, column.name


def _depends(entity: Entity, member: Any) -> list[tuple[str, str]]:
    """The members (entity, name) a dimension, metric or feature is built on."""
    if isinstance(member, Metric):
        if member.kind == "derived":
            return list(_references(entity, member, member.expr, "metric"))
        if member.base is not None:
            return [(entity.name, member.base)]
        return [*_references(entity, member, member.expr, ""), *_references(entity, member, member.filter, "")]
    if isinstance(member, Feature):
        if member.kind == "derived":
            return list(_references(entity, member, member.expr, "feature"))
        owner, _, name = (member.ref or "").rpartition(".")
        return [(owner or entity.name, name)]
    return list(_references(entity, None, member.expr, ""))


def _visible(model: Model, hidden: set[tuple[str, str]]) -> dict[str, tuple[set[str], set[str], set[str]]]:
    """Per entity, the dimensions, metrics and features left once hidden members, and every member built on one,
    are removed (a derived metric over a hidden metric would show it)."""
    left = {e.name: (set(e.dimensions), set(e.metrics), set(e.features)) for e in model.entities.values()}
    for name, (dims, metrics, features) in left.items():
        for group in (dims, metrics, features):
            group.difference_update(n for e, n in hidden if e == name)
    changed = True
    while changed:
        changed = False
        for entity in model.entities.values():
            dims, metrics, features = left[entity.name]
            for group, members in ((dims, entity.dimensions), (metrics, entity.metrics),
                                   (features, entity.features)):
                for name in list(group):
                    for owner, ref in _depends(entity, members[name]):
                        if owner in left and ref not in set.union(*left[owner]) and ref in _all(model, owner):
                            group.discard(name)
                            changed = True
                            break
    return left


def _all(model: Model, entity: str) -> set[str]:
    found = model.entities[entity]
    return {*found.dimensions, *found.metrics, *found.features}


@dataclass(frozen=True)
class View:
    """The model as one group of equivalent readers may see it."""

    model: Model
    fingerprint: str  # "" when no policy restricts anything: the same as the model itself
    shape: str  # the members visible and the entities forbidden by role: what the GraphQL schema depends on


def build_view(model: Model, effects: Mapping[str, Effect], fingerprint: str, shape: str) -> View:
    if not fingerprint:
        return View(model, "", "")
    hidden = {(name, member) for name, e in effects.items() for member in e.hidden}
    left = _visible(model, hidden) if hidden else None
    entities = {}
    for entity in model.entities.values():
        e = effects.get(entity.name, UNRESTRICTED)
        changes: dict[str, Any] = {}
        if left is not None:
            dims, metrics, features = left[entity.name]
            changes.update(dimensions={k: v for k, v in entity.dimensions.items() if k in dims},
                           metrics={k: v for k, v in entity.metrics.items() if k in metrics},
                           features={k: v for k, v in entity.features.items() if k in features})
        forbidden = e.forbidden
        if e.rows is not None and forbidden is None:
            try:
                conditions = [substitute(entity.policies[i].rows, dict(values))  # type: ignore[arg-type]
                              for i, values in e.rows]
                changes["rows"] = _rows_select(model, entity, exp.or_(*(exp.Paren(this=c) for c in conditions)))
            except QueryError as error:  # a value the policy cannot use (a list for one value, a wrong type)
                forbidden = f"your attribute values do not fit the policy of {entity.name!r}: {error.message}"
        if forbidden is not None:
            changes["forbidden"] = forbidden
        entities[entity.name] = replace(entity, **changes) if changes else entity
    return View(replace(model, entities=entities), fingerprint, shape)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()[:32]


@dataclass
class Views:
    """Views of one model per reader, bounded: readers map to fingerprints, fingerprints to views (LRU both)."""

    model: Model
    maxsize: int = 256
    _by_access: LRUCache[Access, View] = field(init=False)
    _by_fingerprint: LRUCache[str, View] = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._by_access = LRUCache(maxsize=self.maxsize * 4)
        self._by_fingerprint = LRUCache(maxsize=self.maxsize)
        self._policed = tuple(e for e in self.model.entities.values() if e.policies)
        self._whole = View(self.model, "", "")

    def of(self, access: Access) -> View:
        if not self._policed:
            return self._whole
        with self._lock:
            found = self._by_access.get(access)
        if found is not None:
            return found
        effects = {e.name: effect(e, access) for e in self._policed}
        restricting = {name: e for name, e in effects.items() if e != UNRESTRICTED}
        if not restricting:
            view = self._whole
        else:
            fingerprint = _digest(sorted((name, e.rows, sorted(e.hidden), e.forbidden)
                                         for name, e in restricting.items()))
            with self._lock:
                view = self._by_fingerprint.get(fingerprint)  # type: ignore[assignment]
            if view is None:
                shape = _digest(sorted((name, sorted(e.hidden)) for name, e in restricting.items() if e.hidden))
                view = build_view(self.model, restricting, fingerprint, shape)
        with self._lock:
            if view.fingerprint:
                self._by_fingerprint[view.fingerprint] = view
            self._by_access[access] = view
        return view

    def __len__(self) -> int:
        return len(self._by_fingerprint)
