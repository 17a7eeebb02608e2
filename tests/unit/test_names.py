"""Tests for rosterd.names: name rules, text sanitising, homes, shells and derived login names."""

from __future__ import annotations

import pytest
from rosterd.errors import InvalidName, InvalidValue
from rosterd.names import (
    check_home,
    check_id,
    check_name,
    check_shell,
    derive_login_name,
    sanitize_gecos,
    sanitize_text,
)


def never_taken(_name: str) -> bool:
    return False


@pytest.mark.parametrize("name", ["alice", "a", "_svc", "j.doe", "mary-ann", "x1", "a_b.c-d9",
                                  "z" * 32])
def test_portable_names_are_accepted(name: str) -> None:
    assert check_name(name, max_length=32) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "is empty"),
        ("Alice", "names must be lower case (try 'alice')"),
        ("1234", "digits only"),
        (".", "'.' and '..'"),
        ("..", "'.' and '..'"),
        ("-alice", "may not start with '-'"),
        (".alice", "may not start with '.'"),
        ("9lives", "may not start with '9'"),
        ("alice.", "may not end with '.'"),
        ("al ice", "' ' is not allowed"),
        ("al:ice", "':' is not allowed"),
        ("al/ice", "'/' is not allowed"),
        ("alice\n", "'\\n' is not allowed"),
        ("zoë", "'ë' is not allowed"),
        ("a" * 33, "at most 32 characters (this one has 33"),
        ("root", "reserved for the system"),
        ("nobody", "reserved for the system"),
        ("www-data", "reserved for the system"),
        ("wheel", "reserved for the system"),
        ("systemd-foo", "starting with 'systemd-' are reserved"),
    ],
    ids=lambda value: repr(value)[:20],
)
def test_an_invalid_name_is_refused_saying_why(name: str, why: str) -> None:
    with pytest.raises(InvalidName) as caught:
        check_name(name, max_length=32)
    assert why in str(caught.value)


def test_the_length_limit_is_configurable() -> None:
    assert check_name("a" * 64, max_length=64) == "a" * 64
    with pytest.raises(InvalidName, match="at most 8 characters"):
        check_name("abcdefghi", max_length=8)


def test_the_message_names_what_kind_of_name_was_refused() -> None:
    with pytest.raises(InvalidName, match=r"^group name 'Dev' is not valid: "):
        check_name("Dev", max_length=32, what="group name")


def test_a_very_long_hostile_name_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidName) as caught:
        check_name("A" * 10_000, max_length=32)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Alice Example", "Alice Example"),
        ("Alice: Evil\nroot::0:0:", "Alice Evil root 0 0"),
        ("Doe, John", "Doe John"),
        ("tab\there", "tab here"),
        ("nul\x00byte", "nul byte"),
        ("del\x7fchar", "del char"),
        ("c1\x85next line", "c1 next line"),
        ("line\u2028sep\u2029para", "line sep para"),
        ("bidi\u202eevil", "bidi evil"),
        ("  many   spaces  ", "many spaces"),
        ("Zoë Ångström", "Zoë Ångström"),
        ("lone \udc80 surrogate", "lone surrogate"),
    ],
    ids=lambda value: repr(value)[:24],
)
def test_free_text_is_sanitised_for_passwd_lines(raw: str, clean: str) -> None:
    assert sanitize_text(raw) == clean


def test_invalid_utf8_bytes_are_dropped() -> None:
    assert sanitize_text(b"caf\xc3\xa9 \xff\xfe ok") == "café ok"


def test_text_is_cut_to_255_bytes_on_a_character_boundary() -> None:
    result = sanitize_text("é" * 200)  # 400 bytes of UTF-8
    assert len(result.encode("utf-8")) <= 255
    assert result == "é" * 127


def test_the_byte_limit_is_adjustable() -> None:
    assert sanitize_text("abcdef", max_bytes=3) == "abc"


def test_gecos_never_holds_a_field_or_line_separator() -> None:
    hostile = "".join(chr(c) for c in range(0, 0x2030)) + ":,\n"
    gecos = sanitize_gecos(hostile)
    assert not set(gecos) & {":", ",", "\n", "\r", "\x00", "\x7f", "\u2028", "\u2029"}
    assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F for c in gecos)


@pytest.mark.parametrize(
    ("home", "normal"),
    [("/home/alice", "/home/alice"), ("/home//alice/", "/home/alice"),
     ("/home/./alice", "/home/alice"), ("/home/team/alice", "/home/team/alice")],
)
def test_a_home_under_home_root_is_accepted_and_normalised(home: str, normal: str) -> None:
    assert check_home(home, home_root="/home") == normal


@pytest.mark.parametrize(
    ("home", "why"),
    [
        ("home/alice", "absolute path"),
        ("/home/../etc", "'..'"),
        ("/home/al:ice", "':'"),
        ("/home/al\nice", "control characters"),
        ("/home/al ice", "spaces"),
        ("/srv/alice", "must lie under /home"),
        ("/home", "must lie under /home"),
        ("/homework/alice", "must lie under /home"),
        ("/home/" + "a" * 5000, "longer than"),
    ],
    ids=lambda value: repr(value)[:20],
)
def test_a_bad_home_is_refused_saying_why(home: str, why: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        check_home(home, home_root="/home")
    assert why in str(caught.value)


@pytest.mark.parametrize("shell", ["/bin/bash", "/usr/bin/zsh", "/usr/sbin/nologin",
                                   "/opt/x-1.2/bin/fish+"])
def test_a_safe_absolute_shell_is_accepted(shell: str) -> None:
    assert check_shell(shell) == shell


@pytest.mark.parametrize("shell", ["bash", "/bin/ba sh", "/bin/sh:x", "/bin/../sh", "/bin/",
                                   "/bin/sh\n", "/bin/$(id)"])
def test_an_unsafe_shell_is_refused(shell: str) -> None:
    with pytest.raises(InvalidValue, match="shell"):
        check_shell(shell)


@pytest.mark.parametrize("number", [0, -1, 4294967295, 2**40])
def test_ids_outside_1_to_4294967294_are_refused(number: int) -> None:
    with pytest.raises(InvalidValue, match="from 1 to 4294967294"):
        check_id(number, what="UID")


def test_id_4294967294_is_in_range() -> None:
    assert check_id(4294967294, what="UID") == 4294967294


@pytest.mark.parametrize(
    ("value", "rule", "name"),
    [
        ("alice", "whole", "alice"),
        ("Alice.Example@corp.example.com", "local-part", "alice.example"),
        ("Alice.Example@corp.example.com", "whole", "alice.example_corp.example.com"),
        ("Zoë Ångström", "whole", "zoe_angstrom"),
        ("Straße", "whole", "strasse"),
        ("Sales  Team!!", "whole", "sales_team"),
        ("john..doe", "whole", "john.doe"),
        ("--weird__name--", "whole", "weird_name"),
        ("42answers", "whole", "u42answers"),
        ("user@name@example.com", "local-part", "user_name"),
        ("noatsign", "local-part", "noatsign"),
    ],
)
def test_a_login_name_is_derived_deterministically(value: str, rule: str, name: str) -> None:
    assert derive_login_name(value, rule=rule, max_length=32, taken=never_taken) == name  # type: ignore[arg-type]


def test_a_derived_name_is_cut_to_the_length_limit() -> None:
    name = derive_login_name("a" * 50, max_length=32, taken=never_taken)
    assert name == "a" * 32


def test_a_taken_name_gets_the_first_free_numeric_suffix() -> None:
    taken = {"alice", "alice-2"}
    assert derive_login_name("alice", max_length=32, taken=taken.__contains__) == "alice-3"


def test_a_suffix_keeps_the_name_within_the_length_limit() -> None:
    taken = {"abcdefgh"}
    assert derive_login_name("abcdefgh", max_length=8, taken=taken.__contains__) == "abcdef-2"


def test_a_reserved_name_is_treated_as_taken() -> None:
    assert derive_login_name("root@example.com", rule="local-part", max_length=32,
                             taken=never_taken) == "root-2"


@pytest.mark.parametrize("value", ["", "@example.com", "!!!", "日本語", "...", "  "])
def test_no_name_derivable_is_refused_saying_why(value: str) -> None:
    with pytest.raises(InvalidName, match="no valid name can be derived"):
        derive_login_name(value, rule="local-part", max_length=32, taken=never_taken)


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(InvalidValue, match="rule"):
        derive_login_name("alice", rule="first", max_length=32, taken=never_taken)  # type: ignore[arg-type]


def test_when_every_variant_is_taken_the_derivation_is_refused() -> None:
    with pytest.raises(InvalidName, match="no free name"):
        derive_login_name("bob", max_length=4, taken=lambda _name: True)
