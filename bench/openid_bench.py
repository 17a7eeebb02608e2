"""Measures the server side of an OpenID login: first login (verify, register) and a repeat.

Not a test. It starts the tests' real provider (oidc-provider over HTTPS), walks
the code flow once per person to get genuine ID tokens, then times rosterd's
Registrar.register on a fresh SQLite store in this process, keys cached, so
provider round trips are excluded. Figures go to stdout and build/bench/openid.json.

    .venv/bin/python bench/openid_bench.py [--people 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rosterd.accounts import Accounts  # noqa: E402
from rosterd.activity import Activity  # noqa: E402
from rosterd.config import Config, OpenidConfig, PathsConfig, ProvisioningConfig  # noqa: E402
from rosterd.hostfiles import HostFiles  # noqa: E402
from rosterd.ids import IdAllocator  # noqa: E402
from rosterd.openid.provider import Provider, read_client_credentials  # noqa: E402
from rosterd.openid.registrar import Registrar  # noqa: E402
from rosterd.store import Store  # noqa: E402

from tests.helpers.oidc import code_flow_tokens, oidc_provider  # noqa: E402

REDIRECT = "https://127.0.0.1/openid/callback"
TARGET_FIRST_MS = 50.0
TARGET_REPEAT_MS = 10.0


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
            "max_ms": round(ordered[-1], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=30)
    args = parser.parse_args()
    with oidc_provider() as provider, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        provider.add_redirect_uri(REDIRECT)
        tokens = []
        for n in range(args.people):
            provider.set_account(f"p{n}", {
                "preferred_username": f"person{n}", "email": f"person{n}@example.com",
                "given_name": "Bench", "family_name": f"Person {n}",
                "groups": ["staff", f"team-{n % 5}"]}, sub=f"sub-{n}")
            tokens.append(code_flow_tokens(provider, f"p{n}", redirect_uri=REDIRECT)["id_token"])
        secret = provider.write_client_secret_file(root / "secret")
        cfg = dataclasses.replace(
            Config(), paths=PathsConfig(state_dir=root, runtime_dir=root),
            provisioning=ProvisioningConfig(start_uid=50000, start_gid=50000,
                                            home_root=Path("/home")),
            openid=OpenidConfig(issuer=provider.issuer, client_secret_file=secret,
                                ca_file=provider.ca_file, groups_auto_provision=True))
        store = Store.open_sqlite(root / "rosterd.db")
        accounts = Accounts(store, cfg, HostFiles(), IdAllocator.from_store(store, cfg))
        registrar = Registrar(cfg, accounts, Provider(cfg.openid,
                                                      read_client_credentials(secret)),
                              Activity())
        registrar.provider.warm_up()  # keys cached: no provider round trip below
        first, repeat = [], []
        for token in tokens:
            started = time.perf_counter()
            registrar.register(token, entry_point="grpc")
            first.append((time.perf_counter() - started) * 1000)
        for token in tokens:
            started = time.perf_counter()
            registrar.register(token, entry_point="grpc")
            repeat.append((time.perf_counter() - started) * 1000)
        store.close()
    result = {"people": args.people, "first_login": _summary(first),
              "repeat_login": _summary(repeat),
              "targets_ms": {"first": TARGET_FIRST_MS, "repeat": TARGET_REPEAT_MS}}
    out = REPO / "build" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "openid.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
