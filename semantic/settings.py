"""Every setting of a server or command, declared once: name, default, meaning.

Each setting is read from `SEMANTIC_<NAME>` (and, for `semantic serve`, the option `--<name>` with dashes), checked
here, and documented in README.md (a test holds the list and the README together). The limits bound the work one
request may cause; a request past one is refused with LIMIT_EXCEEDED, naming the limit and how to raise it.

Bottom layer beside `semantic.errors`: nothing here imports the rest of the package.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from semantic.errors import LimitError, SettingError

_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB|%)\s*$", re.IGNORECASE)
_POSTGRES_SIZE = re.compile(r"^\d+(kB|MB|GB|TB)$")  # PostgreSQL's memory units, which are case-sensitive


@dataclass(frozen=True)
class Setting:
    name: str
    default: int | float | str
    help: str

    @property
    def env(self) -> str:
        return f"SEMANTIC_{self.name.upper()}"

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def metavar(self) -> str:
        """What the option takes, for `--help`."""
        if self.name.endswith("_file"):
            return "FILE"
        return "SIZE" if self.name in ("duckdb_memory_limit", "postgres_work_mem") else "N"

    def parse(self, text: str, source: str) -> int | float | str:
        """A value given as text (environment, command line), checked against the default's type."""
        text = text.strip()
        if self.name == "duckdb_memory_limit":
            if not _SIZE.match(text):
                raise SettingError(f"{source}={text!r}: give a size such as 2GB, 512MB or 25% (of RAM)")
            return text
        if self.name == "postgres_work_mem":
            if not _POSTGRES_SIZE.match(text):
                raise SettingError(f"{source}={text!r}: give a size in PostgreSQL's units, such as 64MB or 1GB")
            return text
        if self.name.endswith("_file"):  # a path; the part that reads it says what is wrong with the file
            return text
        try:
            value: int | float = int(text) if isinstance(self.default, int) else float(text)
        except ValueError:
            kind = "a whole number" if isinstance(self.default, int) else "a number"
            raise SettingError(f"{source}={text!r} is not {kind}; {self.name}: {self.help}") from None
        if value < 0 or value != value or value == float("inf"):
            raise SettingError(f"{source}={text!r} must be a finite number ≥ 0; {self.name}: {self.help}")
        return value


SETTINGS: tuple[Setting, ...] = (
    Setting("query_timeout", 60.0, "seconds a warehouse statement may run before it is cancelled (TIMEOUT); "
                                   "0: no limit"),
    Setting("max_fill_periods", 100_000, "periods a `fill` may create; a fill at a fine grain needs its time "
                                         "range in the filter so the count is known before any SQL runs"),
    Setting("max_filter_terms", 2_000, "tokens in one filter (names, literals, operators)"),
    Setting("max_filter_depth", 64, "nesting of parentheses, and/or/not in one filter or typed `where`"),
    Setting("max_keys", 10_000, "keys in one online feature lookup; use a training-set spine for more"),
    Setting("max_spine_rows", 5_000_000, "rows in one training-set spine"),
    Setting("max_upload_bytes", 256 * 1024 * 1024, "bytes of a training-set spine body"),
    Setting("max_body_bytes", 1024 * 1024, "bytes of any other request body (GraphQL documents and variables)"),
    Setting("max_query_depth", 20, "nesting of fields in a GraphQL document, introspection included (the "
                                      "standard introspection query nests 15 deep)"),
    Setting("max_aliases", 50, "aliases in a GraphQL document"),
    Setting("max_tokens", 5_000, "tokens in a GraphQL document"),
    Setting("max_concurrent", 16, "requests one process works on at once; more wait in a queue"),
    Setting("max_queued", 64, "requests waiting for a turn; past it a request gets 503 with Retry-After"),
    Setting("pool_size", 8, "warehouse connections kept open per process (as many again may open under load)"),
    Setting("pool_timeout", 10.0, "seconds a request waits for a warehouse connection before WAREHOUSE_BUSY"),
    Setting("duckdb_memory_limit", "25%", "DuckDB's memory limit: a size (2GB) or a share of RAM (25%); a "
                                          "statement past it fails and gives its memory back"),
    Setting("duckdb_threads", 0, "DuckDB worker threads; 0: one per core"),
    Setting("postgres_work_mem", "256MB", "PostgreSQL's work_mem for a training-set statement only: memory each "
                                          "of its sorts and hashes may take before spilling to disk"),
    Setting("postgres_training_connections", 2, "PostgreSQL connections one large training set runs on at once, "
                                                "each for a share of the spine's keys, all on one snapshot (as many "
                                                "as the pool has spare); 1: one connection"),
    Setting("http_max_age", 60, "seconds browsers and CDNs may keep an answer to a GraphQL GET without errors "
                                "(Cache-Control max-age: public without credentials, private with them); 0: no-store"),
    Setting("persisted_queries_file", "", "a JSON file of the only documents that run (Apollo's persisted-query "
                                          "manifest, or an object of sha256 -> document); empty: any document, and "
                                          "automatic persisted queries"),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The values in effect; read with `current()`, changed with `configure()` (the server does, once)."""

    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def check(self, name: str, amount: int, what: str) -> None:
        """Refuse `amount` of something past the limit `name`, saying how to raise it.

        Raises:
            LimitError: the amount is over the limit (0 means no limit).
        """
        limit = self.values[name]
        if limit and amount > limit:
            setting = BY_NAME[name]
            raise LimitError(f"{what}: {amount:,} is over the limit of {limit:,} ({name}: {setting.help}); ask "
                             f"for less, or raise it with {setting.env} or `semantic serve {setting.option}`")


def load(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Defaults, then the environment, then explicit overrides (command-line options; None means not given).

    Raises:
        SettingError: a value cannot be read, naming the variable or option.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        value: Any = setting.default
        if setting.env in environ:
            value = setting.parse(environ[setting.env], setting.env)
        given = (overrides or {}).get(setting.name)
        if given is not None:
            value = setting.parse(str(given), setting.option)
        values[setting.name] = value
    unknown = set(overrides or {}) - set(BY_NAME)
    if unknown:
        raise SettingError(f"unknown settings {sorted(unknown)}")
    return Settings(values)


_current: Settings | None = None


def current() -> Settings:
    """The settings of this process: the environment's, unless `configure()` set others."""
    global _current
    if _current is None:
        _current = load()
    return _current


def configure(settings: Settings | None) -> None:
    """Make `settings` current (None: read the environment again on next use)."""
    global _current
    _current = settings
