"""An in-process SCIM app over a real SQLite store, with a fake token check."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rosterd.accounts import Accounts
from rosterd.activity import Activity
from rosterd.config import Config, ProvisioningConfig
from rosterd.hostfiles import HostFiles
from rosterd.ids import IdAllocator
from rosterd.model import Change
from rosterd.scim.app import build_scim_app
from rosterd.store import Store
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

TOKEN = "good-token"  # noqa: S105 (a test value)


@dataclass
class Verdict:
    ok: bool
    label: str | None = None
    reason: str = ""
    retry_after_s: float = 0.0


class FakeTokens:
    def __init__(self) -> None:
        self.slow_down = 0.0

    def authenticate(self, authorization: str | None, client: str) -> Verdict:
        if self.slow_down:
            return Verdict(False, reason="slow down", retry_after_s=self.slow_down)
        if authorization == f"Bearer {TOKEN}":
            return Verdict(True, label="test")
        return Verdict(False, reason="the bearer token is not valid")


@dataclass
class Scim:
    client: TestClient
    accounts: Accounts
    store: Store
    tokens: FakeTokens
    changes: list[Change]
    activity: Activity


@pytest.fixture
def scim(tmp_path: Path) -> Iterator[Scim]:
    (tmp_path / "passwd").write_text("root:x:0:0::/root:/bin/sh\ntaken:x:1500:1500::/:/bin/sh\n")
    (tmp_path / "group").write_text("root:x:0:\ntaken:x:1500:\n")
    host = HostFiles(tmp_path / "passwd", tmp_path / "group")
    cfg = Config(provisioning=ProvisioningConfig(start_uid=5000, start_gid=7000,
                                                 home_root=Path("/home")))
    store = Store.open_sqlite(tmp_path / "rosterd.db")
    changes: list[Change] = []
    accounts = Accounts(store, cfg, host, IdAllocator.from_store(store, cfg, host),
                        changes.append)
    tokens = FakeTokens()
    activity = Activity()
    app = Starlette(routes=[Mount("/scim/v2", app=build_scim_app(
        accounts=accounts, tokens=tokens, config=cfg, activity=activity))])
    with TestClient(app, base_url="https://testserver",
                    headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield Scim(client, accounts, store, tokens, changes, activity)
    store.close()
