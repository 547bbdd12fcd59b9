"""Join paths along many-to-one relationships, and one-to-one relationships either way: the only steps that never
fan out. A one-to-one relationship declared on B (B.fk -> A.key) is also a step from A to B, joined on A's key
= B.fk; LEFT, since an A need not have its B."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from semantic.errors import AmbiguousPathError, FanoutError, QueryError
from semantic.model import Model, Relationship

Path = tuple[Relationship, ...]


@functools.lru_cache(maxsize=4096)  # models are frozen; planning asks the same pairs again for every query
def all_paths(model: Model, source: str, target: str) -> tuple[Path, ...]:
    """Every simple path of relationships from `source` to `target` (the empty path when they are equal)."""
    if source == target:
        return ((),)
    found: list[Path] = []

    def walk(entity: str, path: Path, seen: frozenset[str]) -> None:
        for rel in steps(model, entity):
            if rel.entity in seen or rel.entity not in model.entities:
                continue
            step = (*path, rel)
            if rel.entity == target:
                found.append(step)
            else:
                walk(rel.entity, step, seen | {rel.entity})

    walk(source, (), frozenset({source}))
    return tuple(found)


@functools.lru_cache(maxsize=4096)
def steps(model: Model, entity: str) -> tuple[Relationship, ...]:
    """The relationships one can follow from `entity`: its own, and the reverse of each one-to-one pointing at it."""
    if entity not in model.entities:
        return ()
    own = model.entities[entity]
    reverse = tuple(
        Relationship(other.name, own.key, "one_to_one", target_key=rel.key, where=rel.where)
        for other in model.entities.values() if other.name != entity
        for rel in other.relationships if rel.type == "one_to_one" and rel.entity == entity
        and own.relationship_to(other.name) is None)  # declared both ways: one step, not two paths
    return (*own.relationships, *reverse)


def picking(source: str, path: Path, paths: Sequence[Path]) -> list[str]:
    """The shortest tail of `path`'s entity chain that no other path shares."""
    chain = _chain(source, path)
    for size in range(2, len(chain) + 1):
        tail = chain[-size:]
        if sum(_chain(source, p)[-size:] == tail for p in paths) == 1:
            return tail
    return chain


def describe(source: str, path: Path) -> str:
    return " -> ".join([source, *(r.entity for r in path)])


def _chain(source: str, path: Path) -> list[str]:
    return [source, *(r.entity for r in path)]


def join_path(model: Model, source: str, target: str, needed_for: str, via: tuple[str, ...] = ()) -> Path:
    """The one path from `source` to `target`, or a FANOUT / AMBIGUOUS_PATH / BAD_QUERY error saying why not.

    `via` names the entities just before `target` on the path wanted (`route.airport.city`: the path whose last
    hop is route -> airport), which picks one of several paths.
    """
    paths = all_paths(model, source, target)
    if via:
        wanted = [*via, target]
        chosen = tuple(p for p in paths if _chain(source, p)[-len(wanted):] == wanted)
        if not chosen and paths:
            listed = "; ".join(describe(source, p) for p in paths)
            raise QueryError(f"{needed_for}: no path from {source} to {target} goes through "
                             f"{' -> '.join(wanted)}; the paths are: {listed}")
        paths = chosen or paths
    if len(paths) == 1:
        return paths[0]
    if len(paths) > 1:
        listed = "; ".join(describe(source, p) for p in paths)
        names = " or ".join(repr(".".join(picking(source, p, paths)) + ".<dimension>") for p in paths)
        raise AmbiguousPathError(
            f"{needed_for}: {source} reaches {target} along {len(paths)} paths ({listed}), so the answer would "
            f"depend on which one is meant. Name the path by the entities before {target}: {names}."
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
