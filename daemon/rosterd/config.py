"""Reads rosterd.toml into frozen dataclasses, reporting every problem in the file at once."""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import logging
import os
import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from rosterd.errors import ConfigError, ConfigProblem

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/rosterd/rosterd.toml")
CONFIG_ENV = "ROSTERD_CONFIG"
# UIDs and GIDs are unsigned 32-bit; 4294967295 is (uid_t)-1, "no ID" to chown(2).
MAX_ID = 4294967294

Kind = Literal["path", "optional_path", "str", "bool", "int", "mode", "str_list"]


@dataclass(frozen=True)
class Key:
    """One config key: its TOML type, default (as written in TOML) and meaning."""

    section: str
    name: str
    kind: Kind
    default: object
    description: str
    minimum: int | None = None
    maximum: int | None = None
    check: Callable[[Any], str | None] | None = None  # returns a problem, or None

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"


def _claim(value: str) -> str | None:
    return None if value.strip() else "must name a claim; it cannot be empty"


def _shell(value: str) -> str | None:
    if not value.startswith("/"):
        return f"must be an absolute path such as /bin/bash, not {value!r}"
    if not re.fullmatch(r"[A-Za-z0-9_./+-]+", value) or "/../" in value + "/":
        return f"may hold only letters, digits and _ . / + - (no '..'), not {value!r}"
    return None


def _login_name_rule(value: str) -> str | None:
    if value not in ("whole", "local-part"):
        return f'must be "local-part" or "whole", not {value!r}'
    return None


def _listen(value: str) -> str | None:
    if split_listen(value) is None:
        return (
            f"must be HOST:PORT with a port from 1 to 65535, such as 0.0.0.0:8443 "
            f"or [::1]:8443, not {value!r}"
        )
    return None


def split_listen(value: str) -> tuple[str, int] | None:
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9_.-]+):(\d{1,5})", value)
    if match is None:
        return None
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if match.group(1):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    if not 1 <= port <= 65535:
        return None
    return host, port


def listen_is_loopback(listen: str) -> bool:
    """Whether an http.listen value binds only to a loopback address."""
    split = split_listen(listen)
    if split is None:
        return False
    host = split[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _https_url(value: str) -> str | None:
    if value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        return f"must be empty or an https:// URL with a host, not {value!r}"
    if parts.query or parts.fragment:
        return f"must not carry a query or fragment: {value!r}"
    return None


def _public_url(value: str) -> str | None:
    if value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"must be empty or a URL such as https://host.example.com, not {value!r}"
    if parts.query or parts.fragment:
        return f"must not carry a query or fragment: {value!r}"
    return None


def _domains(values: list[str]) -> str | None:
    for value in values:
        if not re.fullmatch(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]{2,}", value):
            return f"holds {value!r}, which is not a lower-case domain such as example.com"
    return None


def _emails(values: list[str]) -> str | None:
    for value in values:
        local, at, domain = value.rpartition("@")
        if not at or not local or _domains([domain]) is not None or value != value.lower():
            return f"holds {value!r}, which is not a lower-case address such as ada@example.com"
    return None


def _scopes(values: list[str]) -> str | None:
    # RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    for value in values:
        if not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", value):
            return f"holds {value!r}; a scope is printable ASCII without spaces, quotes or '\\'"
    return None


KEYS: tuple[Key, ...] = (
    Key("paths", "state_dir", "path", "/var/lib/rosterd", "Directory holding the database."),
    Key("paths", "runtime_dir", "path", "/run/rosterd",
        "Directory holding nss.sock (lookups, any local user) and admin.sock (rosterctl)."),
    Key("provisioning", "start_uid", "int", 1000, "First UID handed out.", 1, MAX_ID),
    Key("provisioning", "start_gid", "int", 1000,
        "First GID handed out for groups that are not user private groups.", 1, MAX_ID),
    Key("provisioning", "home_root", "path", "/home",
        "Directory under which home directories lie (default home: HOME_ROOT/NAME)."),
    Key("provisioning", "default_shell", "str", "/bin/bash", "Login shell of new users.",
        check=_shell),
    Key("provisioning", "skel_dir", "path", "/etc/skel",
        "Directory whose contents are copied into a new home directory."),
    Key("provisioning", "home_mode", "mode", "0700",
        "Permissions of a new home directory, as an octal string."),
    Key("provisioning", "register_on_first_login", "bool", True,
        "Create the account of a person who signs in through OpenID and has none yet."),
    Key("provisioning", "max_name_length", "int", 32,
        "Longest user or group name accepted or derived, in characters.", 1, 256),
    Key("http", "listen", "str", "0.0.0.0:8443",
        "Address and port of the HTTPS listener serving SCIM and OpenID.", check=_listen),
    Key("http", "tls_cert", "path", "/etc/rosterd/tls/cert.pem", "TLS certificate chain (PEM)."),
    Key("http", "tls_key", "path", "/etc/rosterd/tls/key.pem", "TLS private key (PEM)."),
    Key("http", "allow_plain_http", "bool", False,
        "Serve plain HTTP; accepted only when http.listen is a loopback address "
        "(for tests, or behind a TLS-terminating proxy on the same host)."),
    Key("http", "public_url", "str", "",
        "URL under which clients reach this host; empty: https://<host name>:<port>.",
        check=_public_url),
    Key("scim", "enabled", "bool", True, "Serve SCIM 2.0 at <public_url>/scim/v2."),
    Key("scim", "login_name_rule", "str", "local-part",
        "How a pushed user's login name is derived from its SCIM userName: \"local-part\" "
        "(the part before '@') or \"whole\"; then lower-cased, characters outside a-z 0-9 "
        "_ . - replaced, cut to max_name_length, and suffixed -2, -3... when taken.",
        check=_login_name_rule),
    Key("openid", "issuer", "str", "",
        "OpenID provider (HTTPS; discovery at /.well-known/openid-configuration); "
        "empty: OpenID login is off.", check=_https_url),
    Key("openid", "client_secret_file", "path", "/etc/rosterd/openid-client-secret",
        "File with the lines client-id=... and client-secret=..."),
    Key("openid", "ca_file", "optional_path", "",
        "Extra CA bundle for a private PKI; empty: none."),
    Key("openid", "username_claim", "str", "preferred_username",
        "Claim the login name is derived from.", check=_claim),
    Key("openid", "require_username_claim", "bool", False,
        "Refuse a login whose token lacks the username claim (instead of falling back)."),
    Key("openid", "unique_id_claim", "str", "sub",
        "Claim that identifies a person for good (kept as the external ID).", check=_claim),
    Key("openid", "email_claim", "str", "email", "Claim holding the e-mail address.",
        check=_claim),
    Key("openid", "first_name_claim", "str", "given_name", "Claim holding the first name.",
        check=_claim),
    Key("openid", "last_name_claim", "str", "family_name", "Claim holding the last name.",
        check=_claim),
    Key("openid", "groups_claim", "str", "groups", "Claim holding the person's groups.",
        check=_claim),
    Key("openid", "groups_separator", "str", "",
        "Separator when the groups claim is one string; empty: the claim is a list."),
    Key("openid", "groups_auto_provision", "bool", False,
        "Create groups named in the groups claim that do not exist yet."),
    Key("openid", "groups_by_unique_id", "bool", False,
        "Match groups by their identity-provider ID instead of their name."),
    Key("openid", "allowed_domains", "str_list", [],
        "E-mail domains allowed to sign in; empty: any.", check=_domains),
    Key("openid", "allowed_emails", "str_list", [],
        "E-mail addresses allowed to sign in; empty: any.", check=_emails),
    Key("openid", "custom_scopes", "str_list", [],
        "Scopes requested besides openid, profile and email.", check=_scopes),
    Key("admin", "group", "str", "",
        "Group allowed to use admin.sock (mode 0660); empty: root only (mode 0600)."),
)

SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(key.section for key in KEYS))


@dataclass(frozen=True)
class PathsConfig:
    state_dir: Path = Path("/var/lib/rosterd")
    runtime_dir: Path = Path("/run/rosterd")


@dataclass(frozen=True)
class ProvisioningConfig:
    start_uid: int = 1000
    start_gid: int = 1000
    home_root: Path = Path("/home")
    default_shell: str = "/bin/bash"
    skel_dir: Path = Path("/etc/skel")
    home_mode: int = 0o700
    register_on_first_login: bool = True
    max_name_length: int = 32


@dataclass(frozen=True)
class HttpConfig:
    listen: str = "0.0.0.0:8443"
    tls_cert: Path = Path("/etc/rosterd/tls/cert.pem")
    tls_key: Path = Path("/etc/rosterd/tls/key.pem")
    allow_plain_http: bool = False
    public_url: str = ""


@dataclass(frozen=True)
class ScimConfig:
    enabled: bool = True
    login_name_rule: Literal["whole", "local-part"] = "local-part"


@dataclass(frozen=True)
class OpenidConfig:
    issuer: str = ""
    client_secret_file: Path = Path("/etc/rosterd/openid-client-secret")
    ca_file: Path | None = None
    username_claim: str = "preferred_username"
    require_username_claim: bool = False
    unique_id_claim: str = "sub"
    email_claim: str = "email"
    first_name_claim: str = "given_name"
    last_name_claim: str = "family_name"
    groups_claim: str = "groups"
    groups_separator: str = ""
    groups_auto_provision: bool = False
    groups_by_unique_id: bool = False
    allowed_domains: tuple[str, ...] = ()
    allowed_emails: tuple[str, ...] = ()
    custom_scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdminConfig:
    group: str = ""


@dataclass(frozen=True)
class Config:
    """The whole configuration; `Config()` is the built-in default."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    provisioning: ProvisioningConfig = field(default_factory=ProvisioningConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    scim: ScimConfig = field(default_factory=ScimConfig)
    openid: OpenidConfig = field(default_factory=OpenidConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)


_SECTION_TYPES: dict[str, type[Any]] = {
    "paths": PathsConfig,
    "provisioning": ProvisioningConfig,
    "http": HttpConfig,
    "scim": ScimConfig,
    "openid": OpenidConfig,
    "admin": AdminConfig,
}

_TYPE_NAMES: dict[str, str] = {
    "path": "absolute path",
    "optional_path": "absolute path or \"\"",
    "str": "string",
    "bool": "boolean",
    "int": "integer",
    "mode": "octal string",
    "str_list": "list of strings",
}


def _toml_type(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
             dict: "table"}
    return names.get(type(value), type(value).__name__)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _convert(key: Key, raw: object, problems: list[ConfigProblem]) -> object:
    """Checks one value against its key; returns the Python value or None after a problem."""

    def problem(message: str) -> None:
        problems.append(ConfigProblem(key.dotted, message))

    expected = {"path": str, "optional_path": str, "str": str, "bool": bool, "int": int,
                "mode": str, "str_list": list}[key.kind]
    if type(raw) is not expected:  # exact: TOML true is not the integer 1
        problem(f"must be {_a(_TYPE_NAMES[key.kind])}, not {_a(_toml_type(raw))} ({raw!r})")
        return None
    if key.kind == "str_list":
        assert isinstance(raw, list)
        if not all(isinstance(item, str) for item in raw):
            problem(f"must be a list of strings, not {raw!r}")
            return None
    if isinstance(raw, str) and ("\x00" in raw or "\n" in raw):
        problem("must not contain a NUL or newline character")
        return None
    if key.check is not None:
        message = key.check(raw)
        if message is not None:
            problem(message)
            return None
    if key.kind == "int":
        assert isinstance(raw, int)
        if (key.minimum is not None and raw < key.minimum) or (
            key.maximum is not None and raw > key.maximum
        ):
            problem(f"must be from {key.minimum} to {key.maximum}, not {raw}")
            return None
        return raw
    if key.kind in ("path", "optional_path"):
        assert isinstance(raw, str)
        if raw == "" and key.kind == "optional_path":
            return None
        if not raw.startswith("/"):
            problem(f"must be an absolute path (starting with /), not {raw!r}")
            return None
        if ".." in PurePosixPath(raw).parts:
            problem(f"must not contain '..': {raw!r}")
            return None
        return Path(os.path.normpath(raw))
    if key.kind == "mode":
        assert isinstance(raw, str)
        if not re.fullmatch(r"0?[0-7]{3}", raw):
            problem(f'must be an octal mode from "0000" to "0777" such as "0700", not {raw!r}')
            return None
        return int(raw, 8)
    if key.kind == "str_list":
        assert isinstance(raw, list)
        return tuple(raw)
    return raw


def _nearest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def config_from_dict(data: Mapping[str, object], *, source: str = "") -> Config:
    """Builds a Config from parsed TOML, raising ConfigError with every problem found."""
    problems: list[ConfigProblem] = []
    by_section: dict[str, dict[str, Key]] = {}
    for key in KEYS:
        by_section.setdefault(key.section, {})[key.name] = key
    all_dotted = [key.dotted for key in KEYS]
    values: dict[str, dict[str, object]] = {section: {} for section in SECTIONS}
    for section, table in data.items():
        if section not in by_section:
            hint = _nearest(section, list(SECTIONS))
            problems.append(ConfigProblem(
                section, f"unknown section{hint}; known sections: {', '.join(SECTIONS)}"))
            continue
        if not isinstance(table, dict):
            problems.append(ConfigProblem(
                section, f"must be a table ([{section}]), not {_a(_toml_type(table))}"))
            continue
        for name, raw in table.items():
            found = by_section[section].get(name)
            if found is None:
                hint = _nearest(f"{section}.{name}", all_dotted) or _nearest(
                    name, list(by_section[section]))
                problems.append(ConfigProblem(f"{section}.{name}", f"unknown key{hint}"))
                continue
            value = _convert(found, raw, problems)
            if value is not None or (found.kind == "optional_path" and raw == ""):
                values[section][name] = value
    sections = {}
    for section in SECTIONS:
        sections[section] = _SECTION_TYPES[section](**values[section])
    cfg = Config(**sections)
    _check_across_keys(cfg, data, problems)
    if problems:
        raise ConfigError(problems, source=source)
    return cfg


def _check_across_keys(
    cfg: Config, data: Mapping[str, object], problems: list[ConfigProblem]
) -> None:
    """Rules that tie two keys together; reported only if each key alone was fine."""
    bad = {problem.key for problem in problems}
    http = cfg.http
    if http.allow_plain_http and "http.listen" not in bad and not listen_is_loopback(http.listen):
        problems.append(ConfigProblem(
            "http.allow_plain_http",
            f"may be true only when http.listen is a loopback address such as 127.0.0.1:8443 "
            f"or [::1]:8443 (it is {http.listen!r}); put a TLS-terminating proxy in front "
            "and listen on loopback, or set tls_cert and tls_key"))
    if (http.public_url.startswith("http://") and not http.allow_plain_http
            and "http.public_url" not in bad):
        problems.append(ConfigProblem(
            "http.public_url", "is http:// but http.allow_plain_http is false; use https://"))
    for path_key in ("paths.state_dir", "paths.runtime_dir"):
        if path_key not in bad and getattr(cfg.paths, path_key.split(".")[1]) == Path("/"):
            problems.append(ConfigProblem(path_key, "must not be / itself"))
    if "provisioning.home_root" not in bad and cfg.provisioning.home_root == Path("/"):
        problems.append(ConfigProblem(
            "provisioning.home_root",
            "must not be / itself; homes go in a directory such as /home"))


def config_from_toml(text: str, *, source: str = "") -> Config:
    """Parses TOML text; a syntax error is reported with its line and column."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # Python 3.11's message ends with "(at line L, column C)".
        raise ConfigError([ConfigProblem("", f"is not valid TOML: {err}")], source=source) from None
    return config_from_dict(data, source=source)


def load_config(path: Path | None = None) -> Config:
    """Loads the config file: PATH, else $ROSTERD_CONFIG, else /etc/rosterd/rosterd.toml.

    A file named by the caller or by the environment must exist; the default file
    may be absent, and then the built-in defaults apply.
    """
    explicit = path is not None or bool(os.environ.get(CONFIG_ENV))
    if path is None:
        path = Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError([ConfigProblem(
                "", "does not exist; create it, or name another file with --config or "
                f"${CONFIG_ENV}")], source=str(path)) from None
        log.info("no config file at %s; using the built-in defaults", path)
        return Config()
    except OSError as err:
        raise ConfigError([ConfigProblem("", f"cannot be read: {err.strerror}")],
                          source=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError([ConfigProblem(
            "", f"is not valid UTF-8 (byte {err.start})")], source=str(path)) from None
    return config_from_toml(text, source=str(path))


def _toml_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def reference_markdown() -> str:
    """Renders the config reference (every key, its type, default and meaning) as Markdown."""
    lines = [
        "# rosterd.toml reference",
        "",
        "<!-- Generated by `python -m rosterd.config --reference`; edit config.py, not this. -->",
        "",
        f"rosterd reads `{DEFAULT_CONFIG_PATH}`, or the file `${CONFIG_ENV}` or `--config` "
        "names. An unknown key or a bad value stops rosterd at start, with every problem listed.",
    ]
    for section in SECTIONS:
        lines += ["", f"## [{section}]", "", "| key | type | default | description |",
                  "| --- | --- | --- | --- |"]
        for key in KEYS:
            if key.section != section:
                continue
            kind = _TYPE_NAMES[key.kind]
            if key.minimum is not None:
                kind += f" ({key.minimum} to {key.maximum})"
            description = key.description.replace("|", "\\|")
            lines.append(
                f"| `{key.name}` | {kind} | `{_toml_literal(key.default)}` | {description} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rosterd.config",
                                     description="Checks a config file or prints the reference.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--reference", action="store_true",
                       help="print the config reference as Markdown")
    group.add_argument("--check", type=Path, metavar="PATH", help="check a config file")
    args = parser.parse_args(argv)
    if args.reference:
        sys.stdout.write(reference_markdown())
        return 0
    try:
        load_config(args.check)
    except ConfigError as err:
        print(f"rosterd: {err}", file=sys.stderr)
        return 1
    print(f"{args.check}: fine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
