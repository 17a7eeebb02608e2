"""Applies RFC 7644 §3.5.2 PATCH operations, as Okta and Entra ID really send them."""

from __future__ import annotations

import logging
from typing import Any

from scim2_models import Path
from scim2_models.exceptions import InvalidPathException
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    ValuePath,
)

from rosterd.names import shown
from rosterd.scim.errors import ScimError, invalid_value
from rosterd.scim.filters import Document, element_resolver, matches
from rosterd.scim.schema import Attr, ResourceType

log = logging.getLogger(__name__)

PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MAX_OPERATIONS = 1000
# Keys a no-path replace may carry that are read-only and simply skipped: Okta's group
# rename puts the group's "id" inside value (scim-clients.md §1.2).
_SKIPPED_KEYS = frozenset({"id", "meta", "schemas", "groups"})


def _get(container: Any, name: str) -> Any:
    if not isinstance(container, dict):
        return None
    folded = name.casefold()
    return next((v for k, v in container.items() if k.casefold() == folded), None)


def _has(container: dict[str, Any], name: str) -> bool:
    folded = name.casefold()
    return any(k.casefold() == folded for k in container)


def operations(body: Any) -> list[dict[str, Any]]:
    """The Operations of a PatchOp body; an empty list is a no-op (Entra's validator sends one)."""
    if not isinstance(body, dict):
        raise ScimError(400, "a PATCH body must be a JSON object (a PatchOp)", "invalidSyntax")
    ops = _get(body, "Operations")
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise ScimError(400, f"a PatchOp ({PATCH_OP_SCHEMA}) needs Operations: an array of "
                             "objects with op, path and value", "invalidSyntax")
    if len(ops) > MAX_OPERATIONS:
        raise ScimError(400, f"a PatchOp may carry at most {MAX_OPERATIONS} operations",
                        "invalidSyntax")
    return ops


def apply_patch(kind: ResourceType, doc: Document, ops: list[dict[str, Any]]) -> Document:
    """Applies every operation to `doc` in order (it is changed in place and returned).

    The caller re-reads the result as a whole document, so every value is checked
    as in a PUT, and commits it in one transaction: all operations or none.
    """
    for op in ops:
        _apply_one(kind, doc, op)
    return doc


def _apply_one(kind: ResourceType, doc: Document, op: dict[str, Any]) -> None:
    name = _get(op, "op")
    # Entra ID capitalises op names (Add, Replace, Remove) without ?aadOptscim062020 (§2.5).
    verb = name.casefold() if isinstance(name, str) else ""
    if verb not in ("add", "replace", "remove"):
        raise ScimError(400, f"op {shown(str(name))} is not add, replace or remove",
                        "invalidSyntax")
    path, value, has_value = _get(op, "path"), _get(op, "value"), _has(op, "value")
    if path in (None, ""):
        if verb == "remove":
            raise ScimError(400, "remove needs a path (RFC 7644 §3.5.2.2)", "noTarget")
        if not isinstance(value, dict):
            raise invalid_value(f"{verb} without a path needs an object of attributes as value")
        # Okta and Entra send a no-path replace whose keys are plain (active), dotted
        # (name.givenName) or URN-qualified (urn:...:enterprise:2.0:User:employeeNumber).
        for key, item in value.items():
            if key.casefold() in _SKIPPED_KEYS:
                continue
            extension = kind.extension(key)
            if extension is not None and isinstance(item, dict):
                for sub_key, sub_item in item.items():
                    _apply_path(kind, doc, verb, f"{extension.id}:{sub_key}", sub_item, True)
            else:
                _apply_path(kind, doc, verb, key, item, True)
        return
    if not isinstance(path, str):
        raise ScimError(400, "path must be a string", "invalidPath")
    extension = kind.extension(path)
    if extension is not None:  # a bare extension URN addresses the whole block
        if verb == "remove":
            doc.pop(extension.id, None)
            return
        if not isinstance(value, dict):
            raise invalid_value(f"{verb} on {extension.id} needs an object of its attributes")
        for sub_key, sub_item in value.items():
            _apply_path(kind, doc, verb, f"{extension.id}:{sub_key}", sub_item, True)
        return
    _apply_path(kind, doc, verb, path, value, has_value)


def _locate(kind: ResourceType, doc: Document, target: AttrPath, text: str,
            verb: str) -> tuple[dict[str, Any], Attr]:
    container: dict[str, Any] = doc
    if target.uri is not None:
        extension = kind.extension(target.uri)
        if extension is not None:
            block = doc.get(extension.id)
            if not isinstance(block, dict):
                block = {}
                if verb != "remove":
                    doc[extension.id] = block
            container, attr = block, extension.attr(target.attr)
        elif target.uri.casefold() == kind.core.id.casefold():
            attr = kind.attr(target.attr)
        else:
            raise ScimError(400, f"path {shown(text)} names a schema this {kind.name} does not "
                                 "have", "invalidPath")
    else:
        attr = kind.attr(target.attr)
    if attr is None:
        raise ScimError(400, f"path {shown(text)} names no attribute of a {kind.name}",
                        "invalidPath")
    if not attr.writable:
        raise ScimError(400, f"{attr.name} is read-only", "mutability")
    return container, attr


def _apply_path(kind: ResourceType, doc: Document, verb: str, text: str, value: Any,
                has_value: bool) -> None:
    try:
        node = Path(text).ast
    except InvalidPathException as err:
        raise ScimError(400, f"path {shown(text)} is not valid: {err}", "invalidPath") from None
    if isinstance(node, AttrPath):
        target, selector, sub_name = node, None, node.sub_attr
    elif isinstance(node, ValuePath):
        target, selector, sub_name = node.attr_path, node.val_filter, node.sub_attr
    else:
        raise ScimError(400, f"path {shown(text)} is a filter, not an attribute path",
                        "invalidPath")
    container, attr = _locate(kind, doc, AttrPath(target.attr, None, target.uri), text, verb)
    sub: Attr | None = None
    if sub_name is not None:
        sub = attr.sub(sub_name)
        if sub is None:
            raise ScimError(400, f"{attr.name} has no sub-attribute {shown(sub_name)}",
                            "invalidPath")
        if not sub.writable:
            raise ScimError(400, f"{attr.name}.{sub.name} is read-only", "mutability")
    if selector is not None:
        _apply_selected(container, attr, sub, selector, verb, value, text)
    elif sub is not None:
        _apply_sub(container, attr, sub, verb, value)
    else:
        _apply_attr(container, attr, verb, value, has_value)


def _clearing(value: Any) -> bool:
    # Entra's gallery "SCIM_Null_Update_Test" replaces optional attributes with "" and
    # null and expects them cleared (scim-clients.md §2.4).
    return value is None or value == ""


def _same_item(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict) and _get(a, "value") is not None:
        return bool(_get(a, "value") == _get(b, "value"))
    return bool(a == b)


def _apply_attr(container: dict[str, Any], attr: Attr, verb: str, value: Any,
                has_value: bool) -> None:
    if verb == "remove":
        if attr.required:
            raise ScimError(400, f"{attr.name} is required and cannot be removed", "mutability")
        if attr.multi_valued and has_value and isinstance(value, list):
            # Entra's legacy member removal lists the members to remove in value; remove
            # only those, never the whole attribute (scim-clients.md §2.3).
            kept = [item for item in container.get(attr.name) or []
                    if not any(_same_item(item, gone) for gone in value)]
            _store(container, attr, kept)
        else:
            container.pop(attr.name, None)
        return
    if _clearing(value):
        if attr.required:
            raise invalid_value(f"{attr.name} is required and cannot be cleared")
        container.pop(attr.name, None)
        return
    if attr.multi_valued:
        items = value if isinstance(value, list) else [value]
        if verb == "add":  # RFC 7644 §3.5.2.1: add appends; an equal value is not repeated
            existing = list(container.get(attr.name) or [])
            existing += [item for item in items if not any(_same_item(item, e) for e in existing)]
            items = existing
        _store(container, attr, items)
    elif attr.type == "complex":
        if not isinstance(value, dict):
            raise invalid_value(f"{attr.name} must be an object")
        # RFC 7644 §3.5.2.3: sub-attributes left out of value are left unchanged.
        merged = dict(container.get(attr.name) or {})
        merged.update(value)
        container[attr.name] = merged
    else:
        container[attr.name] = value


def _apply_sub(container: dict[str, Any], attr: Attr, sub: Attr, verb: str, value: Any) -> None:
    if attr.multi_valued:  # emails.value without a filter: every value's sub-attribute
        for item in container.get(attr.name) or []:
            _set_sub(item, sub, verb, value)
        return
    current = container.get(attr.name)
    target = dict(current) if isinstance(current, dict) else {}
    _set_sub(target, sub, verb, value)
    _store(container, attr, target)


def _set_sub(item: Any, sub: Attr, verb: str, value: Any) -> None:
    if not isinstance(item, dict):
        return
    for key in [k for k in item if k.casefold() == sub.name.casefold()]:
        del item[key]
    if verb != "remove" and not _clearing(value):
        item[sub.name] = value


def _apply_selected(container: dict[str, Any], attr: Attr, sub: Attr | None,
                    selector: FilterNode, verb: str, value: Any, text: str) -> None:
    if not attr.multi_valued:
        raise ScimError(400, f"{attr.name} is single-valued; only multi-valued attributes can "
                             "be filtered", "invalidPath")
    items = list(container.get(attr.name) or [])
    chosen = [i for i, item in enumerate(items)
              if matches(selector, element_resolver(attr, item))]
    if verb == "remove":
        if sub is not None:
            for i in chosen:
                _set_sub(items[i], sub, verb, None)
        else:
            items = [item for i, item in enumerate(items) if i not in chosen]
    elif not chosen:
        # Entra ID adds and replaces emails[type eq "work"].value when no work e-mail
        # exists yet and expects it created; RFC 7644 would answer noTarget (§2.4).
        created = _element_from(selector, text)
        if sub is not None:
            _set_sub(created, sub, verb, value)
        elif isinstance(value, dict):
            created.update(value)
        items.append(created)
    else:
        for i in chosen:
            if sub is not None:
                _set_sub(items[i], sub, verb, value)
            elif isinstance(value, dict):
                items[i] = value if verb == "replace" else {**items[i], **value}
            else:
                raise invalid_value(f"{verb} on {shown(text)} needs an object as value")
    _store(container, attr, items)


def _element_from(selector: FilterNode, text: str) -> dict[str, Any]:
    """The new value a filter such as `type eq "work"` describes, for create-on-absent."""
    terms = selector.terms if isinstance(selector, LogicalExpr) and \
        selector.op == LogicalOperator.and_ else (selector,)
    created: dict[str, Any] = {}
    for term in terms:
        if not (isinstance(term, Comparison) and term.op == CompareOperator.eq
                and term.attr_path.sub_attr is None and term.attr_path.uri is None):
            raise ScimError(400, f"path {shown(text)} matches no value, and its filter does not "
                                 "describe one to create", "noTarget")
        created[term.attr_path.attr] = term.value
    return created


def _store(container: dict[str, Any], attr: Attr, value: Any) -> None:
    if value in (None, [], {}):
        container.pop(attr.name, None)
    else:
        container[attr.name] = value
