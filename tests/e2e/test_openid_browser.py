"""The login through nginx in headless Chromium, as a person does it.

Debian's chromium, driven through chromedriver by Selenium, opens the app behind
nginx (the README's auth_request set-up, as in test_openid_nginx.py), lands on the
real provider's login page (oidc-provider's devInteractions form), types a login
and password, consents, and comes back to the app, which shows the POSIX name.
A person whose e-mail domain is not allowed sees rosterd's refusal page instead.

The browser trusts exactly the two certificates the test issued (nginx's and the
provider's), by their public keys: `--ignore-certificate-errors-spki-list` takes
the base64 SHA-256 of each leaf's SubjectPublicKeyInfo, and only a server that
presents one of those keys gets past certificate checks. Nothing else is
trusted, which the last test shows with rosterd's own listener, whose key (from
another test CA) is not listed.

On failure, a screenshot, the page's HTML and chromedriver's log go to
build/browser-failures/.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.test_openid import start_openid_rosterd
from tests.helpers.frontdoor import NGINX, FrontDoor, nginx_front_door
from tests.helpers.hostview import REPO, run_in_view
from tests.helpers.oidc import OidcProvider, oidc_provider

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FAILURES = REPO / "build" / "browser-failures"
WAIT_S = 30  # for each page or element; a login takes well under a second here

pytestmark = [
    pytest.mark.skipif(not Path(NGINX).exists(),
                       reason="nginx is not installed (tools/system-deps.sh)"),
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="chromium and chromium-driver are not installed "
                              "(tools/system-deps.sh)"),
]


def spki_sha256(cert_pem: bytes) -> str:
    """What --ignore-certificate-errors-spki-list takes: base64(SHA-256(SubjectPublicKeyInfo))."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@dataclass
class BrowserFrontDoor:
    door: FrontDoor
    trusted_spki: list[str]  # nginx's and the provider's leaf keys, nothing else

    @property
    def provider(self) -> OidcProvider:
        return self.door.provider


@pytest.fixture(scope="module")
def front_door() -> Iterator[BrowserFrontDoor]:
    """nginx + tiny app + rosterd admitting only example.com addresses, + the provider."""
    with oidc_provider() as provider, nginx_front_door(
        provider,
        lambda url: start_openid_rosterd(provider, http={"public_url": url},
                                         allowed_domains=["example.com"]),
    ) as door:
        # The provider's leaf is the first certificate of the chain it serves.
        provider_leaf = (provider.root / "cert.pem").read_bytes()
        yield BrowserFrontDoor(door, [spki_sha256(door.leaf_pem), spki_sha256(provider_leaf)])


@dataclass
class Browser:
    driver: webdriver.Chrome
    log: Path

    def wait(self) -> WebDriverWait[webdriver.Chrome]:
        return WebDriverWait(self.driver, WAIT_S)

    def element(self, css: str) -> WebElement:
        found: WebElement = self.wait().until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, css)),
            f"no visible {css!r} on {self.driver.current_url}")
        return found

    def wait_for_url(self, prefix: str) -> None:
        self.wait().until(lambda d: d.current_url.startswith(prefix),
                          f"never reached {prefix}")

    def text(self) -> str:
        return str(self.element("body").text)


@pytest.fixture
def browser(front_door: BrowserFrontDoor, request: pytest.FixtureRequest) -> Iterator[Browser]:
    """A fresh headless Chromium (new profile, no cookies) per test; evidence kept on failure."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir="/tmp"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        # The machine notes' set: headless as root, and no calls home, which this
        # closed network refuses many at a time.
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--disable-default-apps", "--no-default-browser-check",
        "--password-store=basic", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        # Only loopback: any other name (the provider's page asks for a web font) fails
        # at once instead of waiting on DNS.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
        "--ignore-certificate-errors-spki-list=" + ",".join(front_door.trusted_spki),
    ):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "credentials_enable_service": False, "profile.password_manager_enabled": False,
        "profile.password_manager_leak_detection": False})
    log = profile.with_name(profile.name + ".chromedriver.log")
    # An explicit driver path: Selenium Manager (which would download one) never runs.
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(log))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT_S)
    browser = Browser(driver, log)
    failed_before = request.session.testsfailed
    try:
        yield browser
    finally:
        if request.session.testsfailed > failed_before:
            _keep_evidence(browser, request.node.name)
        driver.quit()  # ends chromium, then stops chromedriver (its Popen, by PID)
        process = service.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
        log.unlink(missing_ok=True)


def _keep_evidence(browser: Browser, name: str) -> None:
    FAILURES.mkdir(parents=True, exist_ok=True)
    stem = FAILURES / re.sub(r"[^\w.-]", "_", name)
    try:
        browser.driver.save_screenshot(str(stem.with_suffix(".png")))
        stem.with_suffix(".html").write_text(
            f"<!-- {browser.driver.current_url} -->\n{browser.driver.page_source}")
    except Exception as err:  # evidence is best effort; the test's failure stands
        stem.with_suffix(".txt").write_text(f"no screenshot: {err!r}\n")
    if browser.log.exists():
        shutil.copy(browser.log, stem.with_suffix(".chromedriver.log"))
    print(f"browser evidence: {stem}.*")  # shown with the failure


def sign_in(browser: Browser, front_door: BrowserFrontDoor, login: str) -> None:
    """Opens the app, signs in at the provider's page and consents, as a person would."""
    door = front_door.door
    browser.driver.get(f"{door.url}/app/")
    browser.wait_for_url(front_door.provider.issuer + "/interaction/")
    browser.element('input[name="login"]').send_keys(login)
    browser.element('input[name="password"]').send_keys("any password")
    browser.element('button[type="submit"]').click()
    # The consent page: "Continue" submits prompt=consent.
    browser.wait().until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, 'input[name="prompt"][value="consent"]')),
        f"no consent page after the login form: {browser.driver.current_url}")
    browser.element('button[type="submit"]').click()
    # Back on this host: the app, or rosterd's page saying why not.
    browser.wait_for_url(door.url + "/")


def test_a_person_signs_in_through_the_browser_and_gets_an_account(
        front_door: BrowserFrontDoor, browser: Browser) -> None:
    front_door.provider.set_account("gil", {
        "preferred_username": "Gil.Lee@example.com", "email": "gil.lee@example.com",
        "email_verified": True, "given_name": "Gil", "family_name": "Lee"}, sub="sub-gil")
    sign_in(browser, front_door, "gil")
    browser.wait_for_url(f"{front_door.door.url}/app/")
    browser.wait().until(lambda d: "hello" in d.find_element(By.TAG_NAME, "body").text,
                         "the app's page never showed")
    assert browser.text() == "hello gil.lee"
    # The session cookie is rosterd's, HttpOnly and Secure, so a reload stays signed in.
    session = browser.driver.get_cookie("rosterd_session")
    assert session is not None and session["httpOnly"] and session["secure"]
    browser.driver.get(f"{front_door.door.url}/app/again")
    browser.wait_for_url(f"{front_door.door.url}/app/again")
    assert browser.text() == "hello gil.lee"

    result = run_in_view(["getent", "passwd", "gil.lee"],
                         nss_socket=front_door.door.daemon.nss_socket)
    assert result.returncode == 0, result.stderr
    fields = result.stdout.strip().split(":")
    assert fields[0] == "gil.lee" and int(fields[2]) >= 1000 and "Gil Lee" in fields[4], fields


def test_a_refused_person_sees_why_in_words_they_can_take_to_their_admin(
        front_door: BrowserFrontDoor, browser: Browser) -> None:
    front_door.provider.set_account("out", {
        "preferred_username": "outsider", "email": "out@elsewhere.org",
        "email_verified": True}, sub="sub-out")
    sign_in(browser, front_door, "out")
    browser.wait_for_url(f"{front_door.door.url}/openid/callback")
    assert browser.element("h1").text == "You cannot sign in to this host"
    reason = browser.element("#reason").text
    assert "'out@elsewhere.org' may not sign in to this host" in reason, reason
    assert "domain 'elsewhere.org' is not allowed" in reason
    assert "ask your admin to add your domain or address" in reason
    assert "send this page's text to the administrator" in browser.text()
    assert browser.driver.get_cookie("rosterd_session") is None
    result = run_in_view(["getent", "passwd", "outsider"],
                         nss_socket=front_door.door.daemon.nss_socket)
    assert result.returncode == 2 and result.stdout == ""
    # Back at the app, they are not let in: the provider remembers their sign-in and
    # sends them straight back, and rosterd refuses again with the same words.
    browser.driver.get(f"{front_door.door.url}/app/")
    browser.wait_for_url(f"{front_door.door.url}/openid/callback")
    assert browser.element("#reason").text == reason


def test_the_browser_trusts_only_the_certificates_the_test_issued(
        front_door: BrowserFrontDoor, browser: Browser) -> None:
    # rosterd's own listener has a certificate from a CA the browser does not know,
    # and its key is not listed: Chromium must stop at a certificate error.
    browser.driver.get(f"{front_door.door.daemon.base_url}/openid/login")
    try:
        browser.wait().until(lambda d: "ERR_CERT" in d.page_source,
                             "no certificate error page")
    except TimeoutException:
        pytest.fail(f"Chromium opened rosterd's page without trusting its certificate: "
                    f"{browser.driver.current_url}")
