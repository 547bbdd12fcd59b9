"""The semantic query as plain, hashable data, and the filter language.

A query's identity ignores the order of its metrics and dimensions: `canonical()` sorts them, plans and SQL are
built from the canonical form, and only the final projection follows the order the caller asked for.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlglot import Token, TokenType, exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ParseError, TokenError

from semantic import settings
from semantic.errors import QueryError, did_you_mean
from semantic.model import GRAINS

# What a filter may contain; anything else (subqueries, casts, arbitrary functions) is refused before planning.
_ALLOWED: tuple[type[exp.Expr], ...] = (
    exp.And, exp.Or, exp.Not, exp.Paren, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between,
    exp.Like, exp.ILike, exp.Is, exp.Null, exp.Boolean, exp.Literal, exp.Column, exp.Identifier, exp.Neg,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Lower, exp.Upper, exp.Coalesce, exp.Abs, exp.Length, exp.Trim,
)
_FUNCTIONS = "lower, upper, coalesce, abs, length, trim"
_REF = re.compile(r"^(?P<via>(?:[A-Za-z_]\w*\.)*?)(?:(?P<entity>[A-Za-z_]\w*)\.)?(?P<name>[A-Za-z_]\w*)"
                  r"(?::(?P<grain>[A-Za-z]+))?$")


@dataclass(frozen=True, order=True)
class DimensionRef:
    """`entity.name`, `entity.name:grain`, or the reserved `time:grain` (entity None, name "time").

    Entities written before the owner pick the join path when there are several: `route.airport.city` is the
    airport reached through route (`via` = ("route",)).
    """

    entity: str | None
    name: str
    grain: str | None = None
    via: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> DimensionRef:
        match = _REF.match(text.strip())
        if not match:
            raise QueryError(f"{text!r} is not a dimension name; write `entity.dimension`, "
                             f"`entity.dimension:grain` or `time:grain`")
        entity, name, grain = match.group("entity"), match.group("name"), match.group("grain")
        via = tuple(part for part in match.group("via").split(".") if part)
        if grain is not None and grain.lower() not in GRAINS:
            raise QueryError(f"{text!r}: unknown grain {grain!r}; use one of {', '.join(GRAINS)}")
        grain = grain.lower() if grain else None
        if entity is None:
            if name == "time":
                return cls(None, "time", grain)
            raise QueryError(f"{text!r}: bare names are not allowed; write `entity.{name}` (there is no default "
                             f"entity), or `time:grain` for each metric's own time")
        return cls(entity, name, grain, via)

    def __str__(self) -> str:
        base = self.name if self.entity is None else ".".join((*self.via, self.entity, self.name))
        return f"{base}:{self.grain}" if self.grain else base


@dataclass(frozen=True)
class Order:
    item: str
    descending: bool = False

    @classmethod
    def parse(cls, text: str) -> Order:
        """`-order.revenue`, `order.revenue desc`, `order.revenue asc` or `order.revenue`."""
        text = text.strip()
        lowered = text.lower()
        if text.startswith("-"):
            return cls(text[1:].strip(), True)
        for suffix, desc in ((" desc", True), (" asc", False)):
            if lowered.endswith(suffix):
                return cls(text[: -len(suffix)].strip(), desc)
        return cls(text, False)


@dataclass(frozen=True)
class Filter:
    """A parsed, allow-listed filter; equal filters have equal canonical text."""

    text: str
    tree: exp.Expr = field(compare=False, hash=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Filter:
        tree = parse_filter(text)
        return cls(tree.sql(), tree)

    @classmethod
    def of(cls, tree: exp.Expr) -> Filter:
        check_filter(tree)
        return cls(tree.sql(), tree)


@dataclass(frozen=True)
class SemanticQuery:
    """What a consumer asked for, before it is checked against the model."""

    metrics: tuple[str, ...] = ()
    dimensions: tuple[str, ...] = ()
    where: Filter | None = None
    order_by: tuple[Order, ...] = ()
    limit: int | None = None
    offset: int | None = None
    timezone: str | None = None  # IANA name; periods are cut in this zone (stored naive times are UTC)
    fill: str | None = None  # "zero" or "null": every period of the range, not only those with data

    def __post_init__(self) -> None:
        if self.fill not in (None, "zero", "null"):
            raise QueryError(f"fill must be 'zero' or 'null', got {self.fill!r}")
        if self.timezone is not None:
            check_timezone(self.timezone)
        if not self.metrics and not self.dimensions:
            raise QueryError("ask for at least one metric or dimension")
        for value, what in ((self.limit, "limit"), (self.offset, "offset")):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise QueryError(f"{what} must be a whole number ≥ 0, got {value!r}")
        for items, what in ((self.metrics, "metric"), (self.dimensions, "dimension")):
            seen = set()
            for item in items:
                if item in seen:
                    raise QueryError(f"{what} {item!r} is asked for twice")
                seen.add(item)

    def canonical(self) -> SemanticQuery:
        """The same query with metrics and dimensions sorted: equal requests compile to equal SQL."""
        return SemanticQuery(tuple(sorted(self.metrics)), tuple(sorted(self.dimensions)), self.where,
                             self.order_by, self.limit, self.offset, self.timezone, self.fill)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SemanticQuery):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _identity(self) -> tuple[object, ...]:
        return (frozenset(self.metrics), frozenset(self.dimensions), self.where, self.order_by, self.limit,
                self.offset, self.timezone, self.fill)


@functools.cache
def _zones() -> frozenset[str]:
    # The IANA names only: not tzdata's folders (`America`), its `posix/` and `right/` copies, or `localtime` (the
    # server's own zone, which the warehouses do not know by that name).
    return frozenset(available_timezones() - {"localtime"}) | {"UTC"}


def check_timezone(name: str) -> None:
    """Refuse a name that is not an IANA time zone, with a suggestion."""
    try:
        if not isinstance(name, str) or name not in _zones():
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        shown = name if isinstance(name, str) and len(name) <= 64 else f"{str(name)[:64]}..."
        hint = did_you_mean(shown, _zones()) if isinstance(name, str) and len(name) <= 64 else ""
        raise QueryError(f"unknown time zone {shown!r}; use an IANA name such as 'Europe/Paris' or 'UTC'.{hint}"
                         ) from None


def _depth(tree: exp.Expr) -> int:
    """Nesting of parentheses and negations (a flat chain of `or` is one level), without recursion."""
    deepest = 0
    stack: list[tuple[exp.Expr, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        depth += isinstance(node, exp.Paren | exp.Not)
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in node.iter_expressions())
    return deepest


def column_text(column: exp.Column) -> str:
    """A filter column's semantic name: `customer.region`, `route.airport.city`, `time:day`."""
    return ".".join(part.name for part in column.parts)


def _merge_grains(tokens: list[Token]) -> list[Token]:
    """`a.b:month` and `time:day` become one quoted identifier token `b:month`/`time:day` (sqlglot's grammar has no
    colon suffix), so the parser yields Column(table=a, name='b:month')."""
    merged: list[Token] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if (i + 2 < len(tokens) and tokens[i + 1].token_type == TokenType.COLON
                and tokens[i + 2].token_type == TokenType.VAR and tok.token_type != TokenType.STRING):
            merged.append(Token(TokenType.IDENTIFIER, f"{tok.text}:{tokens[i + 2].text}", tok.line, tok.col,
                                tok.start, tokens[i + 2].end))
            i += 3
            continue
        merged.append(tok)
        i += 1
    return merged


def parse_filter(text: str) -> exp.Expr:
    """Parse the filter language into an allow-listed sqlglot tree whose columns are semantic names.

    >>> parse_filter("customer.region = 'EU' and time:day >= '2024-01-01'").sql()
    'customer.region = \\'EU\\' AND "time:day" >= \\'2024-01-01\\''
    """
    if not isinstance(text, str) or not text.strip():
        raise QueryError("the filter is empty; leave it out or write a condition such as customer.region = 'EU'")
    dialect = DuckDB()
    limits = settings.current()
    # A cheap bound first, so a megabyte of text is not tokenized: few tokens take more than 16 characters.
    limits.check("max_filter_terms", len(text) // 16, "tokens in the filter (at least)")
    try:
        tokens = _merge_grains(dialect.tokenize(text))
        limits.check("max_filter_depth", _nesting(tokens), "levels of parentheses in the filter")
        limits.check("max_filter_terms", len(tokens), "tokens in the filter")
        trees = dialect.parser().parse(tokens, text)
    except (ParseError, TokenError) as error:
        detail = getattr(error, "errors", None)
        message = detail[0]["description"] if detail else str(error).splitlines()[0]
        message = re.sub(r"<class '[\w.]*?(\w+)'>", r"\1", message)  # sqlglot names its node classes by path
        raise QueryError(f"cannot parse filter {_quote(text)}: {message}") from None
    except (ValueError, IndexError, AttributeError, TypeError, RecursionError):
        # sqlglot's parser fails on some malformed input (`->`) in ways other than ParseError
        raise QueryError(f"cannot parse filter {_quote(text)}; write a condition such as customer.region = "
                         f"'EU'") from None
    if len(trees) != 1 or trees[0] is None:
        raise QueryError(f"the filter {_quote(text)} must be one condition (join several with `and`)")
    tree = trees[0]
    check_filter(tree)
    return tree


def _quote(text: str, most: int = 200) -> str:
    """A filter as quoted in a message: whole if short, else its start (a message never echoes a huge input)."""
    return repr(text) if len(text) <= most else repr(text[:most]) + f"... ({len(text):,} characters)"


def _nesting(tokens: list[Token]) -> int:
    depth = deepest = 0
    for token in tokens:
        if token.token_type == TokenType.L_PAREN:
            depth += 1
            deepest = max(deepest, depth)
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
    return deepest


def check_filter(tree: exp.Expr) -> None:
    """Refuse every node outside the filter language, and a filter past the size or nesting limits (a typed
    `where` is built as a tree, so it is counted here)."""
    limits = settings.current()
    nodes = list(tree.walk())
    limits.check("max_filter_terms", len(nodes), "terms in the filter")
    limits.check("max_filter_depth", _depth(tree), "levels of nesting (and/or/not, parentheses) in the filter")
    for node in nodes:
        if not isinstance(node, _ALLOWED):
            name = node.name.upper() if isinstance(node, exp.Anonymous) else node.key.upper()
            raise QueryError(f"{name} is not allowed in a filter ({node.sql()!r}); filters may use semantic "
                             f"names, literals, comparisons, and/or/not, in, between, like, is null and the "
                             f"functions {_FUNCTIONS}")
        if isinstance(node, exp.Like | exp.ILike) and not (isinstance(node.expression, exp.Literal)
                                                           and node.expression.is_string):
            raise QueryError(f"{node.sql()!r}: `like` takes a quoted pattern, as in `customer.region like 'E%'`")
        if isinstance(node, exp.In) and node.args.get("field") is not None:  # `x in y`, no list
            raise QueryError(f"{node.sql()!r}: `in` takes a list in parentheses, as in `customer.region in ('EU', "
                             f"'NA')`")
        if isinstance(node, exp.Column) and node.args.get("catalog"):
            raise QueryError(f"{node.sql()!r} is too long a name; write `entity.dimension`, or one entity before "
                             f"it to pick a join path (`route.airport.city`)")
