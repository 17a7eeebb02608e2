"""Evaluates RFC 7644 §3.4.2.2 filters, parsed by scim2-models, on rendered SCIM documents."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from scim2_models import ScimFilter
from scim2_models.exceptions import InvalidFilterException
from scim2_models.path import (
    ORDERING_OPERATORS,
    STRING_OPERATORS,
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)

from rosterd.scim.errors import ScimError
from rosterd.scim.schema import Attr, ResourceType

log = logging.getLogger(__name__)

MAX_FILTER_CHARS = 4096
Document = dict[str, Any]
# Resolves an attribute path in a scope to its values and definition (None: unknown).
Resolver = Callable[[AttrPath], tuple[list[Any], Attr | None]]


def parse_filter(text: str) -> FilterNode:
    """Parses a filter with scim2-models' grammar; a bad one is 400 invalidFilter."""
    if len(text) > MAX_FILTER_CHARS:
        raise ScimError(400, f"the filter is longer than {MAX_FILTER_CHARS} characters",
                        "invalidFilter")
    try:
        return ScimFilter(text).ast
    except InvalidFilterException as err:
        raise ScimError(400, f"the filter {text!r} is not valid: {err}", "invalidFilter") from None


def _get(container: Any, name: str) -> Any:
    """A key of a JSON object, matched ignoring case (RFC 7643 §2.1)."""
    if not isinstance(container, dict):
        return None
    if name in container:
        return container[name]
    folded = name.casefold()
    return next((v for k, v in container.items() if k.casefold() == folded), None)


def _flatten(value: Any) -> list[Any]:
    if value is None:
        return []
    return [v for v in value if v is not None] if isinstance(value, list) else [value]


def resource_resolver(kind: ResourceType, doc: Document) -> Resolver:
    """Resolves paths against a whole resource: core, common and extension attributes."""

    def resolve(path: AttrPath) -> tuple[list[Any], Attr | None]:
        container: Any = doc
        if path.uri is not None:
            extension = kind.extension(path.uri)
            if extension is not None:
                container, attr = _get(doc, extension.id), extension.attr(path.attr)
            elif path.uri.casefold() == kind.core.id.casefold():
                attr = kind.attr(path.attr)
            else:
                return [], None
        else:
            attr = kind.attr(path.attr)
        if attr is None:
            return [], None
        values = _flatten(_get(container, attr.name))
        if path.sub_attr is None:
            return values, attr
        sub = attr.sub(path.sub_attr)
        if sub is None:
            return [], None
        return [v for item in values for v in _flatten(_get(item, sub.name))], sub

    return resolve


def element_resolver(parent: Attr, element: Any) -> Resolver:
    """Resolves the sub-attribute paths inside a value filter's brackets."""

    def resolve(path: AttrPath) -> tuple[list[Any], Attr | None]:
        sub = parent.sub(path.attr)
        if sub is None or path.uri is not None or path.sub_attr is not None:
            return [], None
        return _flatten(_get(element, sub.name)), sub

    return resolve


def matches(node: FilterNode, resolve: Resolver) -> bool:
    """Whether the scope `resolve` reads satisfies the filter.

    Unknown attributes match nothing (RFC 7644 §3.4.2.1 has them evaluate to
    false). A multi-valued attribute matches when any of its values does.
    """
    if isinstance(node, LogicalExpr):
        if node.op == LogicalOperator.and_:
            return all(matches(term, resolve) for term in node.terms)
        return any(matches(term, resolve) for term in node.terms)
    if isinstance(node, Not):
        return not matches(node.expr, resolve)
    if isinstance(node, Present):
        values, attr = resolve(node.attr_path)
        return attr is not None and any(v not in ("", [], {}) for v in values)
    if isinstance(node, ValuePath):
        values, attr = resolve(node.attr_path)
        if attr is None:
            return False
        return any(matches(node.val_filter, element_resolver(attr, item)) for item in values)
    if isinstance(node, Comparison):
        values, attr = resolve(node.attr_path)
        if attr is None:
            return False
        if attr.type == "complex":
            # `members eq "<id>"` compares the members' values (RFC 7643 §2.4: value is the
            # significant sub-attribute); AWS and Entra use this form.
            sub = attr.sub("value")
            if sub is None:
                return False
            values, attr = [_get(v, "value") for v in values if _get(v, "value") is not None], sub
        if node.value is None:  # `eq null` is true of an unassigned attribute
            found = not values
            return found if node.op == CompareOperator.eq else not found
        equal = any(_compare(attr, node.op if node.op != CompareOperator.ne
                             else CompareOperator.eq, actual, node.value) for actual in values)
        if node.op == CompareOperator.ne:
            return not equal
        return equal
    raise ScimError(400, f"filter element {node} is not supported", "invalidFilter")


def check_filter(node: FilterNode, resolve: Resolver) -> None:
    """Refuses an operator its attribute's type forbids, before any resource is read.

    RFC 7644 §3.4.2.2: ordering and substring operators make no sense on booleans
    (and ordering none on binary values); such a filter is 400 invalidFilter even
    when nothing would be compared.
    """
    if isinstance(node, LogicalExpr):
        for term in node.terms:
            check_filter(term, resolve)
    elif isinstance(node, Not):
        check_filter(node.expr, resolve)
    elif isinstance(node, ValuePath):
        _, attr = resolve(node.attr_path)
        if attr is not None:
            check_filter(node.val_filter, element_resolver(attr, {}))
    elif isinstance(node, Comparison):
        _, attr = resolve(node.attr_path)
        if attr is not None and attr.type == "complex":
            attr = attr.sub("value")
        if attr is None:
            return
        if attr.type == "boolean" and node.op not in (CompareOperator.eq, CompareOperator.ne):
            raise _refuse(attr, node.op)
        if attr.type in ("integer", "decimal") and node.op in STRING_OPERATORS:
            raise _refuse(attr, node.op)
        if attr.type == "binary" and node.op in ORDERING_OPERATORS:
            raise _refuse(attr, node.op)


def _refuse(attr: Attr, op: CompareOperator) -> ScimError:
    return ScimError(400, f"the operator {op.value!r} cannot be used on {attr.name}, "
                          f"which is {attr.type}", "invalidFilter")


def _as_bool(value: Any) -> bool | None:
    # Entra ID sends booleans as strings inside filters: roles[primary eq "True"] (§2.4).
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.casefold() in ("true", "false"):
        return value.casefold() == "true"
    return None


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _order(op: CompareOperator, left: Any, right: Any) -> bool:
    if op == CompareOperator.eq:
        return bool(left == right)
    if op == CompareOperator.gt:
        return bool(left > right)
    if op == CompareOperator.ge:
        return bool(left >= right)
    if op == CompareOperator.lt:
        return bool(left < right)
    return bool(left <= right)


def _compare(attr: Attr, op: CompareOperator, actual: Any, expected: Any) -> bool:
    if attr.type == "boolean":
        if op != CompareOperator.eq:
            raise _refuse(attr, op)  # RFC 7644 §3.4.2.2: no ordering or substrings on booleans
        return _as_bool(actual) is not None and _as_bool(actual) == _as_bool(expected)
    if attr.type in ("integer", "decimal"):
        if op in STRING_OPERATORS:
            raise _refuse(attr, op)
        if isinstance(expected, str):
            try:
                expected = float(expected)
            except ValueError:
                return False
        if isinstance(expected, bool) or not isinstance(expected, int | float):
            return False
        return isinstance(actual, int | float) and _order(op, actual, expected)
    if attr.type == "dateTime":
        left, right = _as_time(actual), _as_time(expected)
        if left is None or right is None or op in STRING_OPERATORS:
            return False
        try:
            return _order(op, left, right)
        except TypeError:  # one naive, one aware: not comparable, so no match
            return False
    if attr.type == "binary" and op in ORDERING_OPERATORS:
        raise _refuse(attr, op)
    if not isinstance(actual, str) or not isinstance(expected, str):
        return False
    if not attr.case_exact:
        actual, expected = actual.casefold(), expected.casefold()
    if op == CompareOperator.co:
        return bool(expected in actual)
    if op == CompareOperator.sw:
        return bool(actual.startswith(expected))
    if op == CompareOperator.ew:
        return bool(actual.endswith(expected))
    return _order(op, actual, expected)


def equality_hint(node: FilterNode, names: tuple[str, ...]) -> tuple[str, str] | None:
    """(attribute, value) of an `eq` that every match must satisfy, for an indexed query.

    Okta and Entra ID look users up by `userName eq`, `externalId eq` or `id eq`
    and groups by `displayName eq` (scim-clients.md §1.2, §2.2); those are answered
    from an index, and the whole filter is still evaluated on what the index finds.
    """
    if isinstance(node, Comparison) and node.op == CompareOperator.eq:
        path = node.attr_path
        if path.sub_attr is None and isinstance(node.value, str):
            folded = path.attr.casefold()
            for name in names:
                if name.casefold() == folded and (
                        path.uri is None or path.uri.casefold().startswith(
                            "urn:ietf:params:scim:schemas:core:2.0:")):
                    return name, node.value
        return None
    if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_:
        for term in node.terms:
            hint = equality_hint(term, names)
            if hint is not None:
                return hint
    return None
