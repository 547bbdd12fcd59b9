"""The error family every module raises.

Bottom layer: this module imports nothing from the package. Only `api/` maps these errors to GraphQL
`extensions.code` values and exit statuses.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A " Did you mean ...?" hint, or "" when nothing is close.

    >>> did_you_mean("revnue", ["revenue", "order_count"])
    " Did you mean 'revenue'?"
    """
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


class SemanticError(Exception):
    """Base of every error this package raises on purpose; `code` is stable."""

    code = "BAD_QUERY"

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message  # for the client: what, where, a hint; never data values, hosts or paths
        self.detail = detail  # for the server log only: the underlying error's own text


@dataclass(frozen=True)
class Issue:
    """One problem found while loading or checking a model, with where it is. `level` "error" makes the model
    invalid; "warning" (a fact worth knowing, such as orphan foreign keys) and "note" (a suggestion) do not."""

    message: str
    file: str = "<model>"
    line: int = 0
    level: str = "error"

    def __str__(self) -> str:
        label = "" if self.level == "error" else f"{self.level}: "
        return f"{self.file}:{self.line}: {label}{self.message}" if self.line else f"{self.file}: {label}{self.message}"


class ModelError(SemanticError):
    """The model is invalid; carries every issue found, not just the first."""

    code = "BAD_MODEL"

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = tuple(issues)
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in the model:"
        super().__init__("\n".join([head, *(f"  {i}" for i in self.issues)]))


class QueryError(SemanticError):
    """The request cannot be answered as asked."""

    code = "BAD_QUERY"


class LimitError(QueryError):
    """The request asks for more work than a configured limit allows (see `semantic.settings`)."""

    code = "LIMIT_EXCEEDED"


class SettingError(SemanticError):
    """A setting (environment variable or option) cannot be read."""

    code = "BAD_SETTING"


class UnknownFieldError(QueryError):
    code = "UNKNOWN_FIELD"


class ForbiddenError(QueryError):
    """The reader's roles or attributes do not allow what was asked; nothing ran."""

    code = "FORBIDDEN"


class FanoutError(QueryError):
    """Answering would aggregate a metric across a one-to-many join and double count."""

    code = "FANOUT"


class AmbiguousPathError(QueryError):
    code = "AMBIGUOUS_PATH"


class DataIntegrityError(QueryError):
    """The data breaks an assumption the answer relies on (a joined key that is not unique would double count)."""

    code = "DATA_INTEGRITY"


class CompileError(SemanticError):
    """A valid request that cannot be expressed in the target dialect."""

    code = "COMPILE_ERROR"


class WarehouseError(SemanticError):
    """The warehouse failed or could not be reached."""

    code = "WAREHOUSE_ERROR"


class WarehouseUnavailableError(WarehouseError):
    code = "WAREHOUSE_UNAVAILABLE"


class WarehouseBusyError(WarehouseError):
    """Every warehouse connection stayed busy for longer than the request may wait."""

    code = "WAREHOUSE_BUSY"


class WarehouseTimeoutError(WarehouseError):
    """A statement ran past the warehouse's time limit and was cancelled."""

    code = "TIMEOUT"
