"""Serves /ServiceProviderConfig, /ResourceTypes and /Schemas (RFC 7644 §4) from schema.py."""

from __future__ import annotations

import logging
from typing import Any

from rosterd.scim.schema import RESOURCE_TYPES, SCHEMAS, Attr, ResourceType, Schema

log = logging.getLogger(__name__)

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
MAX_RESULTS = 1000


def service_provider_config(base_url: str) -> dict[str, Any]:
    """What rosterd supports, and only that (RFC 7643 §5): no bulk, sort or password change."""
    return {
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": True},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "Bearer token",
            "description": "A token made with `rosterctl token generate LABEL`, sent as "
                           "Authorization: Bearer <token> (RFC 6750).",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750", "primary": True,
        }],
        "meta": {"resourceType": "ServiceProviderConfig",
                 "location": f"{base_url}/ServiceProviderConfig"},
    }


def resource_type(kind: ResourceType, base_url: str) -> dict[str, Any]:
    return {
        "schemas": [RESOURCE_TYPE_SCHEMA], "id": kind.name, "name": kind.name,
        "endpoint": kind.endpoint, "description": kind.core.description,
        "schema": kind.core.id,
        "schemaExtensions": [{"schema": ext.id, "required": False} for ext in kind.extensions],
        "meta": {"resourceType": "ResourceType",
                 "location": f"{base_url}/ResourceTypes/{kind.name}"},
    }


def _attribute(attr: Attr) -> dict[str, Any]:
    # Every characteristic is spelled out with no nulls: Entra reads these documents and
    # scim2-models builds models from them (scim-clients.md §2.1, §3.2).
    out: dict[str, Any] = {
        "name": attr.name, "type": attr.type, "multiValued": attr.multi_valued,
        "description": attr.description or attr.name, "required": attr.required,
        "caseExact": attr.case_exact, "mutability": attr.mutability,
        "returned": attr.returned, "uniqueness": attr.uniqueness,
    }
    if attr.canonical_values:
        out["canonicalValues"] = list(attr.canonical_values)
    if attr.reference_types:
        out["referenceTypes"] = list(attr.reference_types)
    if attr.sub_attributes:
        out["subAttributes"] = [_attribute(sub) for sub in attr.sub_attributes]
    return out


def schema(definition: Schema, base_url: str) -> dict[str, Any]:
    return {
        "schemas": [SCHEMA_SCHEMA], "id": definition.id, "name": definition.name,
        "description": definition.description,
        "attributes": [_attribute(attr) for attr in definition.attributes],
        "meta": {"resourceType": "Schema", "location": f"{base_url}/Schemas/{definition.id}"},
    }


def list_response(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [LIST_RESPONSE], "totalResults": len(resources), "startIndex": 1,
            "itemsPerPage": len(resources), "Resources": resources}


def find_resource_type(name: str) -> ResourceType | None:
    return next((k for k in RESOURCE_TYPES if k.name.casefold() == name.casefold()), None)


def find_schema(urn: str) -> Schema | None:
    return next((s for s in SCHEMAS if s.id.casefold() == urn.casefold()), None)
