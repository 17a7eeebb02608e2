"""Tests for rosterd.config: defaults, every kind of problem, and the generated reference."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from rosterd import config
from rosterd.config import Config, config_from_toml, load_config
from rosterd.errors import ConfigError


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        config_from_toml(text)
    return {problem.key: problem.message for problem in caught.value.problems}


def test_an_empty_file_gives_the_contract_defaults() -> None:
    cfg = config_from_toml("")
    assert cfg == Config()
    assert cfg.paths.state_dir == Path("/var/lib/rosterd")
    assert cfg.paths.runtime_dir == Path("/run/rosterd")
    assert cfg.provisioning.start_uid == 1000
    assert cfg.provisioning.start_gid == 1000
    assert cfg.provisioning.home_root == Path("/home")
    assert cfg.provisioning.default_shell == "/bin/bash"
    assert cfg.provisioning.home_mode == 0o700
    assert cfg.provisioning.max_name_length == 32
    assert cfg.http.listen == "0.0.0.0:8443"
    assert cfg.http.allow_plain_http is False
    assert cfg.scim.enabled is True
    assert cfg.openid.username_claim == "preferred_username"
    assert cfg.openid.allowed_domains == ()
    assert cfg.openid.ca_file is None
    assert cfg.admin.group == ""


def test_every_key_in_the_table_is_a_field_of_its_section_with_the_same_default() -> None:
    defaults = Config()
    parsed = config_from_toml(
        "\n".join(
            f"[{section}]\n"
            + "\n".join(f"{k.name} = {config._toml_literal(k.default)}"
                        for k in config.KEYS if k.section == section)
            for section in config.SECTIONS
        )
    )
    assert parsed == defaults
    for section in config.SECTIONS:
        fields = {f.name for f in dataclasses.fields(getattr(defaults, section))}
        assert fields == {k.name for k in config.KEYS if k.section == section}


def test_the_contract_example_file_loads() -> None:
    cfg = config_from_toml("""
[paths]
state_dir = "/var/lib/rosterd"
runtime_dir = "/run/rosterd"
[provisioning]
start_uid = 1000
start_gid = 1000
home_root = "/home"
default_shell = "/bin/bash"
skel_dir = "/etc/skel"
home_mode = "0700"
register_on_first_login = true
[http]
listen = "0.0.0.0:8443"
tls_cert = "/etc/rosterd/tls/cert.pem"
tls_key = "/etc/rosterd/tls/key.pem"
allow_plain_http = false
public_url = "https://host.example.com"
[scim]
enabled = true
[openid]
issuer = "https://idp.example.com"
client_secret_file = "/etc/rosterd/openid-client-secret"
ca_file = ""
username_claim = "preferred_username"
require_username_claim = false
unique_id_claim = "sub"
email_claim = "email"
first_name_claim = "given_name"
last_name_claim = "family_name"
groups_claim = "groups"
groups_separator = ""
groups_auto_provision = false
groups_by_unique_id = false
allowed_domains = []
allowed_emails = []
custom_scopes = []
""")
    assert cfg.openid.issuer == "https://idp.example.com"
    assert cfg.http.public_url == "https://host.example.com"


def test_every_problem_is_reported_at_once_sorted_by_key() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_toml("""
[provisioning]
start_uid = 0
home_mode = "0800"
[openid]
group_claim = "g"
""")
    keys = [problem.key for problem in caught.value.problems]
    assert keys == sorted(keys)
    assert keys == ["openid.group_claim", "provisioning.home_mode", "provisioning.start_uid"]
    text = str(caught.value)
    assert "3 problems" in text
    assert "openid.group_claim" in text and "provisioning.start_uid" in text


def test_an_unknown_key_suggests_the_nearest_known_one() -> None:
    assert "did you mean 'openid.groups_claim'" in problems_of('[openid]\ngroup_claim = "g"')[
        "openid.group_claim"]


def test_an_unknown_section_suggests_the_nearest_known_one() -> None:
    assert "did you mean 'openid'" in problems_of("[opendi]\nissuer = 'x'")["opendi"]


def test_a_wrong_type_names_the_expected_type_and_the_value() -> None:
    message = problems_of("[provisioning]\nstart_uid = '1000'")["provisioning.start_uid"]
    assert message == "must be an integer, not a string ('1000')"


def test_a_boolean_is_not_accepted_as_an_integer() -> None:
    assert "provisioning.start_uid" in problems_of("[provisioning]\nstart_uid = true")


@pytest.mark.parametrize("value", [0, 4294967295, -5], ids=["zero", "minus one as u32", "negative"])
def test_start_uid_and_start_gid_outside_1_to_4294967294_are_refused(value: int) -> None:
    found = problems_of(f"[provisioning]\nstart_uid = {value}\nstart_gid = {value}")
    assert "from 1 to 4294967294" in found["provisioning.start_uid"]
    assert "provisioning.start_gid" in found


def test_start_uid_4294967294_is_accepted() -> None:
    assert config_from_toml("[provisioning]\nstart_uid = 4294967294").provisioning.start_uid == (
        4294967294)


@pytest.mark.parametrize("value", [0, 257])
def test_max_name_length_outside_1_to_256_is_refused(value: int) -> None:
    assert "from 1 to 256" in problems_of(
        f"[provisioning]\nmax_name_length = {value}")["provisioning.max_name_length"]


@pytest.mark.parametrize("key", ["paths.state_dir", "paths.runtime_dir", "provisioning.home_root",
                                 "provisioning.skel_dir", "http.tls_cert", "openid.ca_file"])
def test_a_relative_path_is_refused(key: str) -> None:
    section, name = key.split(".")
    assert "absolute path" in problems_of(f"[{section}]\n{name} = 'relative/dir'")[key]


def test_a_path_with_dot_dot_is_refused() -> None:
    assert "'..'" in problems_of("[provisioning]\nhome_root = '/srv/../etc'")[
        "provisioning.home_root"]


@pytest.mark.parametrize("value", ["0800", "700x", "07777", "rwx", "7"])
def test_home_mode_must_be_an_octal_string_up_to_0777(value: str) -> None:
    assert "octal" in problems_of(f"[provisioning]\nhome_mode = '{value}'")[
        "provisioning.home_mode"]


def test_home_mode_0750_is_read_as_octal() -> None:
    assert config_from_toml("[provisioning]\nhome_mode = '0750'").provisioning.home_mode == 0o750


def test_home_mode_given_as_a_toml_integer_is_refused() -> None:
    assert "octal string" in problems_of("[provisioning]\nhome_mode = 700")[
        "provisioning.home_mode"]


@pytest.mark.parametrize("value", ["bash", "/bin/ba sh", "/bin/../sh"])
def test_default_shell_must_be_a_safe_absolute_path(value: str) -> None:
    assert "provisioning.default_shell" in problems_of(
        f"[provisioning]\ndefault_shell = '{value}'")


@pytest.mark.parametrize("value", ["0.0.0.0", "0.0.0.0:0", "0.0.0.0:65536", ":8443",  # noqa: S104
                                   "[::1:8443", "host name:80"])
def test_http_listen_must_be_host_colon_port_with_a_port_from_1_to_65535(value: str) -> None:
    assert "HOST:PORT" in problems_of(f"[http]\nlisten = '{value}'")["http.listen"]


@pytest.mark.parametrize("value", ["127.0.0.1:8443", "[::1]:443", "localhost:80",
                                   "0.0.0.0:1", "[::]:65535"])
def test_http_listen_accepts_addresses_and_names(value: str) -> None:
    assert config_from_toml(f"[http]\nlisten = '{value}'").http.listen == value


def test_allow_plain_http_is_refused_with_a_non_loopback_listen_address() -> None:
    message = problems_of("[http]\nlisten = '0.0.0.0:8080'\nallow_plain_http = true")[
        "http.allow_plain_http"]
    assert "loopback" in message


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "[::1]:8080", "localhost:8080"])
def test_allow_plain_http_is_accepted_with_a_loopback_listen_address(listen: str) -> None:
    cfg = config_from_toml(f"[http]\nlisten = '{listen}'\nallow_plain_http = true")
    assert cfg.http.allow_plain_http is True


def test_openid_issuer_must_be_empty_or_https() -> None:
    assert "https://" in problems_of("[openid]\nissuer = 'http://idp.example.com'")[
        "openid.issuer"]
    assert config_from_toml("[openid]\nissuer = ''").openid.issuer == ""


def test_an_empty_claim_name_is_refused() -> None:
    assert "openid.groups_claim" in problems_of("[openid]\ngroups_claim = ''")


def test_allowed_lists_must_hold_strings_of_the_right_shape() -> None:
    found = problems_of(
        "[openid]\nallowed_domains = ['Example.COM']\nallowed_emails = ['nobody']\n"
        "custom_scopes = ['two words', 3]")
    assert set(found) == {"openid.allowed_domains", "openid.allowed_emails",
                          "openid.custom_scopes"}


def test_a_toml_syntax_error_names_the_line_and_column() -> None:
    found = problems_of("[paths]\nstate_dir = = 1\n")
    assert "line 2" in found[""]
    assert "column" in found[""]


def test_a_missing_explicit_file_is_an_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        load_config(missing)


def test_the_environment_variable_names_the_file_to_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rosterd.toml"
    path.write_text("[admin]\ngroup = 'rosteradm'\n")
    monkeypatch.setenv("ROSTERD_CONFIG", str(path))
    assert load_config(None).admin.group == "rosteradm"


def test_a_missing_file_named_by_the_environment_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROSTERD_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError, match=r"absent\.toml"):
        load_config(None)


def test_a_missing_default_file_gives_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROSTERD_CONFIG", raising=False)
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    assert load_config(None) == Config()


def test_the_error_text_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[scim]\nenabled = 'yes'\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert "scim.enabled" in str(caught.value)


def test_the_reference_lists_every_key_with_its_default() -> None:
    reference = config.reference_markdown()
    for key in config.KEYS:
        assert f"`{key.name}`" in reference
        assert f"## [{key.section}]" in reference
    assert '`"0700"`' in reference
    assert "| `max_name_length` | integer (1 to 256) | `32` |" in reference


def test_the_reference_entry_point_prints_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert config.main(["--reference"]) == 0
    assert capsys.readouterr().out.startswith("# rosterd.toml reference")
