"""rosterd driven by an independent SCIM client library (scim2-client), not hand-built requests.

scim2-client ships an engine for httpx2 only; it documents any engine as a
subclass of BaseSyncSCIMClient with `request`, so this adapter runs it over the
httpx client (and the test CA) the other e2e tests use. The client discovers the
service from /ResourceTypes and /Schemas and builds its models from them, so
this also checks that those documents are coherent.
"""

from __future__ import annotations

from typing import Any, cast

import httpx
from scim2_client.client import BaseSyncSCIMClient, RawResponse
from scim2_models import ListResponse, PatchOp, PatchOperation, SearchRequest

from tests.helpers.scim import POSIX, scim_session


class HttpxScimClient(BaseSyncSCIMClient):
    def __init__(self, client: httpx.Client, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client

    def _stays_under_base_url(self, endpoint: str) -> bool:
        url = self.client.build_request("GET", endpoint).url
        base = self.client.base_url
        return bool(url.scheme == base.scheme and url.host == base.host
                    and url.port == base.port and url.raw_path.startswith(base.raw_path))

    def _parse_json(self, response: RawResponse) -> Any:
        return cast(httpx.Response, response).json()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, url, **kwargs)


def test_scim2_client_creates_finds_modifies_and_deletes_a_user() -> None:
    with scim_session() as session:
        client = HttpxScimClient(session.http)
        client.discover()
        user_model = client.get_resource_model("User")
        group_model = client.get_resource_model("Group")
        assert user_model is not None and group_model is not None

        created = client.create(user_model(user_name="ada@example.org", display_name="Ada L",
                                           active=True))
        assert created.id and created.user_name == "ada@example.org"
        assert session.view("getent", "passwd", "ada")[1].startswith("ada:x:20000:20000:Ada L:")

        found = client.query(user_model, query_parameters=SearchRequest(
            filter='userName eq "ADA@example.org"'))
        assert isinstance(found, ListResponse) and found.total_results == 1

        created.display_name = "Ada Lovelace"
        replaced = client.replace(created)
        assert replaced.display_name == "Ada Lovelace"
        assert session.view("getent", "passwd", "ada")[1].split(":")[4] == "Ada Lovelace"

        client.modify(user_model, created.id, PatchOp[user_model](operations=[
            PatchOperation(op="replace", path="active", value=False)]))
        assert session.view("getent", "shadow", "ada") == (0, "ada:!*:::::::\n")

        group = client.create(group_model(display_name="Analysts",
                                          members=[{"value": created.id}]))
        assert session.view("getent", "group", "analysts")[1].endswith(":ada\n")
        fetched = client.query(user_model, created.id)
        raw = session.http.get(f"/Users/{created.id}").json()
        assert fetched.id == created.id and raw[POSIX]["loginName"] == "ada"

        client.delete(group_model, group.id)
        client.delete(user_model, created.id)
        assert session.view("getent", "passwd", "ada")[0] == 2
        assert session.view("getent", "group", "analysts")[0] == 2
