"""A SCIM client session against a real rosterd over HTTPS, and the glibc view beside it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tests.helpers.daemon import Rosterd, make_rosterd, remove_rosterd
from tests.helpers.hostview import run_in_view
from tests.helpers.tls import trusting

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
POSIX = "urn:rosterd:params:scim:schemas:extension:posix:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass
class ScimSession:
    daemon: Rosterd
    http: httpx.Client
    token: str

    def view(self, *argv: str) -> tuple[int, str]:
        """What a real glibc tool prints through the NSS module (exit status, stdout)."""
        result = run_in_view(argv, nss_socket=self.daemon.nss_socket)
        return result.returncode, result.stdout

    def patch(self, path: str, *ops: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.http.patch(path, json={"schemas": [PATCH_OP], "Operations": list(ops)},
                               **kwargs)


@contextmanager
def scim_session(config: dict[str, dict[str, Any]] | None = None,
                 *, user_agent: str = "rosterd tests") -> Iterator[ScimSession]:
    """Starts an HTTPS rosterd, makes a token with rosterctl, and opens a client on it."""
    daemon = make_rosterd(config, https=True)
    try:
        daemon.start()
        token = daemon.new_token("provisioning")
        with httpx.Client(base_url=daemon.scim_url, verify=trusting(daemon.ca_file), timeout=30,
                          headers={"Authorization": f"Bearer {token}",
                                   "User-Agent": user_agent}) as http:
            yield ScimSession(daemon, http, token)
    finally:
        remove_rosterd(daemon)
