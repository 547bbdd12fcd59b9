"""Semantic errors -> GraphQL errors with a stable `extensions.code`; anything unexpected is masked."""

from __future__ import annotations

import logging

from graphql import GraphQLError, GraphQLSyntaxError

from semantic.errors import SemanticError

log = logging.getLogger("semantic.api")

INTERNAL_MESSAGE = "Internal error; the server log has the details."


def to_graphql(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if original is None:  # a syntax or validation error of the GraphQL document itself
        extensions = dict(error.extensions or {})
        # A field the schema lacks (or hides from this reader: its schema has no such field) is an unknown name.
        unknown = error.message.startswith("Cannot query field") or any(
            phrase in error.message for phrase in (" is not defined by type ", " to include unknown field "))
        if isinstance(error, GraphQLSyntaxError):
            code = "GRAPHQL_PARSE_FAILED"
        else:
            code = "UNKNOWN_FIELD" if unknown else "GRAPHQL_VALIDATION_FAILED"
        extensions.setdefault("code", code)
        return GraphQLError(error.message, error.nodes, error.source, error.positions, error.path,
                            extensions=extensions)
    if isinstance(original, SemanticError):
        return GraphQLError(original.message, error.nodes, error.source, error.positions, error.path,
                            extensions={"code": original.code})
    if isinstance(original, GraphQLError) and original.extensions and "code" in original.extensions:
        return GraphQLError(original.message, error.nodes, error.source, error.positions, error.path,
                            extensions=original.extensions)
    log.error("unexpected error in %s", error.path, exc_info=original)
    return GraphQLError(INTERNAL_MESSAGE, error.nodes, error.source, error.positions, error.path,
                        extensions={"code": "INTERNAL"})
