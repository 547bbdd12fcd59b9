"""Semantic errors -> GraphQL errors with a stable `extensions.code`; anything unexpected is masked.

A client's mistake gets a client code (BAD_QUERY, LIMIT_EXCEEDED, ...) and a message it can act on; INTERNAL is
kept for real bugs, logged with the request id the client is shown. No message carries a stack trace, a class path
or the warehouse's own text (that goes to the log, under the request id).
"""

from __future__ import annotations

import logging

from graphql import GraphQLError, GraphQLSyntaxError

from api.limits import reword
from api.observe import request_id
from semantic.errors import SemanticError

log = logging.getLogger("semantic.api")

# One request id for the whole app: the one `api.observe` puts on every log line and response.
REQUEST_ID = request_id


def internal_message() -> str:
    return f"Internal error; the server log has the details under request id {REQUEST_ID.get()}."


def log_detail(error: SemanticError) -> None:
    """The underlying text of a warehouse failure, for the operator, under the request id."""
    if error.detail:
        log.warning("request %s: %s: %s", REQUEST_ID.get(), error.code, error.detail)


def classify(original: BaseException) -> tuple[str, str] | None:
    """(code, message) for an exception that is the client's doing though not one of ours; None for a bug."""
    if isinstance(original, RecursionError):
        return "BAD_QUERY", "the request is nested too deeply to read; nest less"
    return None


def to_graphql(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error  # a resolver's error re-raised through graphql-core
    if original is None or (error.path is None and not isinstance(original, SemanticError | RecursionError)):
        # The document itself, or its variables (coerced before anything runs): the client's to mend.
        extensions = dict(error.extensions or {})
        message = error.message
        reworded = reword(message)
        if reworded is not None:
            message, extensions["code"] = reworded
        # A field the schema lacks (or hides from this reader: its schema has no such field) is an unknown name.
        unknown = message.startswith("Cannot query field") or any(
            phrase in message for phrase in (" is not defined by type ", " to include unknown field "))
        if isinstance(error, GraphQLSyntaxError):
            code = "GRAPHQL_PARSE_FAILED"
        else:
            code = "UNKNOWN_FIELD" if unknown else "GRAPHQL_VALIDATION_FAILED" if original is None else "BAD_QUERY"
        extensions.setdefault("code", code)
        return GraphQLError(message, error.nodes, error.source, error.positions, error.path,
                            extensions=extensions)
    if isinstance(original, SemanticError):
        log_detail(original)
        return GraphQLError(original.message, error.nodes, error.source, error.positions, error.path,
                            extensions={"code": original.code})
    if isinstance(original, GraphQLError) and original.extensions and "code" in original.extensions:
        return GraphQLError(original.message, error.nodes, error.source, error.positions, error.path,
                            extensions=original.extensions)
    known = classify(original)
    if known is not None:
        return GraphQLError(known[1], error.nodes, error.source, error.positions, error.path,
                            extensions={"code": known[0]})
    log.error("request %s: unexpected error in %s", REQUEST_ID.get(), error.path, exc_info=original)
    return GraphQLError(internal_message(), error.nodes, error.source, error.positions, error.path,
                        extensions={"code": "INTERNAL", "requestId": REQUEST_ID.get()})

