"""`--as '<claims JSON>'`: run a command as a principal instead of the trusted local user (to try policies)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from semantic.access import TRUSTED, Access
from semantic.errors import QueryError

F = TypeVar("F", bound=Callable[..., Any])


def as_option(fn: F) -> F:
    return click.option(
        "--as", "as_claims", metavar="CLAIMS_JSON",
        help="Run as this principal, e.g. '{\"sub\": \"ana\", \"roles\": [\"analyst\"], \"region\": \"EU\"}' "
             "(claims as in a token); default: the trusted local user, whom policies do not restrict.")(fn)


def access_of(claims: str | None) -> Access:
    """The context of `--as`; the trusted local user without it."""
    if claims is None:
        return TRUSTED
    try:
        parsed = json.loads(claims)
    except ValueError as error:
        raise QueryError(f"--as must be a JSON object of claims, e.g. '{{\"sub\": \"ana\", \"roles\": "
                         f"[\"analyst\"]}}': {error}") from None
    return Access.from_claims(parsed)
