"""Limits on a GraphQL document, checked at validation before anything runs: field depth (introspection fields
count too, since `__type { ofType { ofType ... } } }` nests as deep as a client likes), aliases and tokens.

The numbers come from `semantic.settings` (max_query_depth, max_aliases, max_tokens); a document past one gets a
LIMIT_EXCEEDED error naming the limit and how to raise it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions import AddValidationRules, MaxAliasesLimiter, MaxTokensLimiter, SchemaExtension

from semantic.settings import BY_NAME, Settings


def limit_hint(name: str) -> str:
    setting = BY_NAME[name]
    return f"raise it with {setting.env} or `semantic serve {setting.option}`"


def _depth(selections: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode],
           seen: frozenset[str]) -> int:
    """The deepest chain of fields under `selections`; fragments are followed once per chain (a cycle is another
    rule's error)."""
    if selections is None:
        return 0
    deepest = 0
    for node in selections.selections:
        if isinstance(node, FieldNode):
            deepest = max(deepest, 1 + _depth(node.selection_set, fragments, seen))
        elif isinstance(node, InlineFragmentNode):
            deepest = max(deepest, _depth(node.selection_set, fragments, seen))
        elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
            fragment = fragments.get(node.name.value)
            if fragment is not None:
                deepest = max(deepest, _depth(fragment.selection_set, fragments, seen | {node.name.value}))
    return deepest


def depth_rule(max_depth: int) -> type[ValidationRule]:
    """A validation rule refusing operations nested deeper than `max_depth` fields."""

    class DepthLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
            for operation in document.definitions:
                if not isinstance(operation, OperationDefinitionNode):
                    continue
                depth = _depth(operation.selection_set, fragments, frozenset())
                if depth > max_depth:
                    context.report_error(GraphQLError(
                        f"the document nests fields {depth} deep, over the limit of {max_depth} "
                        f"(max_query_depth); nest less, or {limit_hint('max_query_depth')}",
                        operation, extensions={"code": "LIMIT_EXCEEDED"}))

    return DepthLimit


class _Tokens(MaxTokensLimiter):
    """graphql-core stops parsing past the limit; the message it gives is reworded where errors are mapped."""


def extensions(settings: Settings) -> list[Callable[[], SchemaExtension] | type[SchemaExtension]]:
    """The schema extensions enforcing these limits (factories: an extension object per request)."""
    tokens = int(settings.max_tokens)
    aliases = MaxAliasesLimiter(max_alias_count=int(settings.max_aliases)).validation_rules
    rules = [depth_rule(int(settings.max_query_depth)), *aliases]
    made: list[Any] = [lambda: AddValidationRules(rules), OneOperation]
    if tokens:
        made.insert(0, lambda: _Tokens(max_token_count=tokens))
    return made


def reword(message: str) -> tuple[str, str] | None:
    """graphql-core's and strawberry's own limit messages -> (our message, code), or None for other errors."""
    lowered = message.lower()
    if "tokens" in lowered and ("more than" in lowered or "limit" in lowered):
        return (f"the document has more tokens than the limit (max_tokens); send a shorter document, or "
                f"{limit_hint('max_tokens')}", "LIMIT_EXCEEDED")
    if "aliases found. allowed" in lowered:
        return (f"{message} (max_aliases); use fewer aliases, or {limit_hint('max_aliases')}", "LIMIT_EXCEEDED")
    return None


class OneOperation(SchemaExtension):
    """A document with several operations must name the one to run (graphql-core would run the first)."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        # strawberry fills `operation_name` in from the first operation; what the client sent is kept apart (a
        # private field, so the test of this rule pins it)
        if document is not None and getattr(context, "_provided_operation_name", None) is None:
            names = [d.name.value if d.name else "(anonymous)" for d in document.definitions
                     if isinstance(d, OperationDefinitionNode)]
            if len(names) > 1:
                context.result = ExecutionResult(data=None, errors=[GraphQLError(
                    f"the document has {len(names)} operations ({', '.join(names)}); say which to run with "
                    f"operationName", extensions={"code": "BAD_QUERY"})])
        yield
