"""Join paths along many-to-one (and one-to-one) relationships: the only direction that never fans out."""

from __future__ import annotations

from semantic.errors import AmbiguousPathError, FanoutError, QueryError
from semantic.model import Model, Relationship

Path = tuple[Relationship, ...]


def all_paths(model: Model, source: str, target: str) -> list[Path]:
    """Every simple path of relationships from `source` to `target` (the empty path when they are equal)."""
    if source == target:
        return [()]
    found: list[Path] = []

    def walk(entity: str, path: Path, seen: frozenset[str]) -> None:
        for rel in model.entities[entity].relationships if entity in model.entities else ():
            if rel.entity in seen or rel.entity not in model.entities:
                continue
            step = (*path, rel)
            if rel.entity == target:
                found.append(step)
            else:
                walk(rel.entity, step, seen | {rel.entity})

    walk(source, (), frozenset({source}))
    return found


def describe(source: str, path: Path) -> str:
    return " -> ".join([source, *(r.entity for r in path)])


def join_path(model: Model, source: str, target: str, needed_for: str) -> Path:
    """The one path from `source` to `target`, or a FANOUT / AMBIGUOUS_PATH / BAD_QUERY error saying why not."""
    paths = all_paths(model, source, target)
    if len(paths) == 1:
        return paths[0]
    if len(paths) > 1:
        listed = "; ".join(describe(source, p) for p in paths)
        raise AmbiguousPathError(
            f"{needed_for}: {source} reaches {target} along {len(paths)} paths ({listed}), so the answer would "
            f"depend on which one is meant. Ask for a dimension of an entity on one path only, or model the "
            f"second path as its own entity."
        )
    if all_paths(model, target, source):
        many = describe(target, all_paths(model, target, source)[0])
        raise FanoutError(
            f"{needed_for}: one {source} has many {target} rows ({many} is many-to-one), so grouping {source} "
            f"metrics by a {target} dimension would count each {source} once per {target} row. Ask for a metric "
            f"of {target} instead, or group by a dimension of {source} or of an entity it points to."
        )
    raise QueryError(
        f"{needed_for}: {target} is not related to {source} by any chain of many-to-one relationships, so its "
        f"dimensions cannot group {source} metrics. Remove it, or add a relationship to the model."
    )
