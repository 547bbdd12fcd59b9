"""A request for feature values: which entity, which keys, which features, as of when. Plain, hashable data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from semantic import settings
from semantic.errors import QueryError, UnknownFieldError, did_you_mean
from semantic.model import Entity, Model
from semantic.plan.timemodel import check_range

_PYTHON = {"integer": (int,), "number": (int, float), "string": (str,), "boolean": (bool,)}


@dataclass(frozen=True)
class FeatureRequest:
    entity: str
    keys: tuple[tuple[Any, ...], ...]  # each key's values in the entity's key-column order
    names: tuple[str, ...]
    at: datetime | None  # naive UTC; None: the latest values (a snapshot, see online.py)

    @classmethod
    def create(cls, model: Model, entity: str, keys: Any, names: list[str] | None = None,
               at: datetime | None = None) -> FeatureRequest:
        """Check a request: the entity and feature names exist, keys have the key's shape and type."""
        found, checked = feature_names(model, entity, names)
        if not isinstance(keys, list) or not keys:
            raise QueryError("`keys` must be a non-empty list of key values")
        settings.current().check("max_keys", len(keys), "keys in one online lookup (a training-set spine takes "
                                                        "more)")
        if at is not None:
            check_range(at.replace(tzinfo=None), "at")  # before any zone arithmetic, which could overflow
            if at.tzinfo is not None:
                at = check_range(at.astimezone(UTC).replace(tzinfo=None), "at")
        return cls(entity, tuple(_key(found, k) for k in keys), checked, at)


def feature_names(model: Model, entity: str, names: Sequence[str] | None) -> tuple[Entity, tuple[str, ...]]:
    """The entity and the features asked for (default: all of them, in model order), each checked to exist."""
    found = model.entities.get(entity)
    if found is None:
        raise UnknownFieldError(f"unknown entity {entity!r}.{did_you_mean(entity, model.entities)}")
    if not found.features:
        raise QueryError(f"entity {entity!r} has no features")
    checked = tuple(names) if names else tuple(found.features)
    twice = sorted({name for name in checked if checked.count(name) > 1})
    if twice:
        raise QueryError(f"feature {', '.join(map(repr, twice))} of {entity!r} is asked for twice; name each once")
    for name in checked:
        if not isinstance(name, str) or name not in found.features:
            raise UnknownFieldError(f"unknown feature {name!r} of {entity!r}.{did_you_mean(name, found.features)}")
    return found, checked


def _key(entity: Entity, value: Any) -> tuple[Any, ...]:
    columns = entity.key
    if isinstance(value, dict):
        missing = [c for c in columns if c not in value]
        extra = [c for c in value if c not in columns]
        if missing or extra:
            raise QueryError(f"key {value!r} of {entity.name!r} must have exactly the columns {list(columns)}")
        values = tuple(value[c] for c in columns)
    elif isinstance(value, list | tuple):
        values = tuple(value)
    else:
        values = (value,)
    if len(values) != len(columns):
        raise QueryError(f"key {value!r} of {entity.name!r} must have {len(columns)} value(s): {list(columns)}")
    for column, item in zip(columns, values, strict=True):
        kind = entity.dimensions[column].type
        allowed = _PYTHON.get(kind)
        wrong_bool = isinstance(item, bool) != (kind == "boolean")  # bool is an int in Python; not here
        if item is None or (allowed and (not isinstance(item, allowed) or wrong_bool)):
            raise QueryError(f"key column {entity.name}.{column} is a {kind}; got {item!r}")
    return values


def keys_from_text(model: Model, entity: str, texts: Sequence[str]) -> list[Any]:
    """Keys written as text (command line, query string): typed like a single key column, or one JSON object per
    key for a composite key (`{"customer_id": 1, "event_timestamp": "2024-01-01"}`)."""
    found, _ = feature_names(model, entity, None)
    if len(found.key) > 1:
        try:
            return [json.loads(t) for t in texts]
        except ValueError:
            raise QueryError(f"{entity!r} has a composite key {list(found.key)}: give each key as a JSON object, "
                             f"e.g. {{\"{found.key[0]}\": ...}}") from None
    kind = found.dimensions[found.key[0]].type
    try:
        return [int(t) if kind == "integer" else float(t) if kind == "number" else t for t in texts]
    except ValueError:
        raise QueryError(f"key values of {entity!r} are {kind}s, got {list(texts)!r}") from None
