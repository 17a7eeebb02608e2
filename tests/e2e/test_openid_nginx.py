"""nginx in front of a tiny app, auth_request to rosterd: after login the app sees the POSIX name.

The set-up is the README's nginx snippet: /openid/ goes to rosterd, every other
path asks rosterd's /openid/auth first and passes X-Roster-User on to the app.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.e2e.test_openid import start_openid_rosterd
from tests.helpers.frontdoor import NGINX, FrontDoor, nginx_front_door
from tests.helpers.hostview import run_in_view
from tests.helpers.oidc import oidc_provider, sign_in_at_provider
from tests.helpers.tls import trusting

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(),
                                reason="nginx is not installed (tools/system-deps.sh)")


@pytest.fixture(scope="module")
def front_door() -> Iterator[FrontDoor]:
    with oidc_provider() as provider, nginx_front_door(
        provider, lambda url: start_openid_rosterd(provider, http={"public_url": url})
    ) as door:
        yield door


def test_the_app_behind_nginx_sees_the_posix_username(front_door: FrontDoor) -> None:
    provider = front_door.provider
    provider.set_account("fay", {"preferred_username": "Fay.Smith@example.com",
                                 "groups": ["designers"]}, sub="sub-fay")
    with httpx.Client(base_url=front_door.url, verify=trusting(front_door.ca_file),
                      follow_redirects=False) as browser:
        first = browser.get("/app/")
        assert first.status_code == 302 and first.headers["location"].endswith(
            "/openid/login?rd=/app/")
        start = browser.get(first.headers["location"])
        assert start.status_code == 302, start.text
        with provider.client() as at_provider:
            at_provider.follow_redirects = False
            back = sign_in_at_provider(at_provider, start.headers["location"], "sub-fay")
        assert back.startswith(f"{front_door.url}/openid/callback")
        done = browser.get(back)
        assert done.status_code == 302, done.text
        page = browser.get(urljoin(front_door.url, done.headers["location"]))
        assert page.status_code == 200 and page.text == "hello fay.smith\n"
        # A header the browser sends itself is replaced, never trusted.
        forged = browser.get("/app/", headers={"X-Roster-User": "root"})
        assert forged.text == "hello fay.smith\n"
    result = run_in_view(["id", "fay.smith"], nss_socket=front_door.daemon.nss_socket)
    assert result.returncode == 0 and "(designers)" not in result.stdout  # not auto-provisioned


def test_a_refused_person_sees_why_in_words_for_their_admin(front_door: FrontDoor) -> None:
    provider = front_door.provider
    provider.set_account("nameless", {"nickname": "x"}, sub="sub-nameless")
    with httpx.Client(base_url=front_door.url, verify=trusting(front_door.ca_file),
                      follow_redirects=False) as browser:
        start = browser.get("/openid/login", params={"rd": "/app/"})
        with provider.client() as at_provider:
            at_provider.follow_redirects = False
            back = sign_in_at_provider(at_provider, start.headers["location"], "sub-nameless")
        page = browser.get(back)
        assert page.status_code == 403
        assert "You cannot sign in to this host" in page.text
        assert "no login name can be made" in page.text and "nickname" in page.text
        assert browser.get("/app/").status_code == 302
