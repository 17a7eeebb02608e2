"""The Python side of the lookup wire format, checked against the shared vectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from rosterd import nss_wire
from rosterd.nss_wire import Kind, WireError

from tests.wire_vectors import generate

VECTORS = Path(generate.__file__).parent


def _decode_as_text(name: str, data: bytes) -> str:
    kind = name.split("-", 1)[0]
    if kind == "passwd":
        return nss_wire.decode_passwd(data).line()
    if kind == "group":
        return nss_wire.decode_group(data).line()
    if kind == "initgroups":
        return " ".join(str(g) for g in nss_wire.decode_gid_list(data))
    if kind == "account":
        return nss_wire.decode_account(data).text()
    if kind in ("pwpage", "grpage"):
        decode = nss_wire.decode_passwd_page if kind == "pwpage" else nss_wire.decode_group_page
        records, cursor = decode(data)
        return "\n".join([*(r.line() for r in records), f"next_cursor {cursor}"])
    raise AssertionError(f"no Python decoder for {kind}")


@pytest.mark.parametrize("name", sorted(generate.vectors()))
def test_encoder_still_produces_the_committed_vector(name: str) -> None:
    data, expected = generate.vectors()[name]
    assert (VECTORS / f"{name}.bin").read_bytes() == data
    assert (VECTORS / f"{name}.expected").read_text() == (expected + "\n" if expected else "")


@pytest.mark.parametrize(
    "name", sorted(n for n in generate.vectors() if not n.startswith("shadow"))
)
def test_decoder_reads_each_vector_or_rejects_the_bad_ones(name: str) -> None:
    data, expected = generate.vectors()[name]
    if expected == "error":
        with pytest.raises(WireError):
            _decode_as_text(name, data)
    else:
        assert _decode_as_text(name, data) == expected


def test_request_round_trips_for_every_kind() -> None:
    cases = [
        (Kind.GETPWNAM, {"name": b"alice"}),
        (Kind.GETPWUID, {"number": 4294967294}),
        (Kind.GETGRENT, {"number": 2**40}),
        (Kind.PING, {}),
    ]
    for kind, fields in cases:
        frame = nss_wire.encode_request(kind, **fields)  # type: ignore[arg-type]
        version, code, length = nss_wire.parse_header(frame[:8])
        assert (version, code, length) == (1, kind, len(frame) - 8)
        request = nss_wire.parse_request(code, frame[8:])
        assert request.kind is kind
        assert request.name == fields.get("name", b"")
        assert request.number == fields.get("number", 0)


@pytest.mark.parametrize(
    ("kind", "payload", "why"),
    [
        (99, b"", "unknown request kind"),
        (Kind.GETPWNAM, b"", "name must be"),
        (Kind.GETPWNAM, b"a" * 256, "name must be"),
        (Kind.GETPWNAM, b"al\0ce", "name must be"),
        (Kind.GETPWUID, b"\1\2\3", "must be a u32"),
        (Kind.GETPWENT, b"\0" * 4, "u64 cursor"),
        (Kind.PING, b"x", "must be empty"),
    ],
    ids=["unknown kind", "empty name", "name too long", "NUL in name", "short uid",
         "short cursor", "ping with payload"],
)
def test_malformed_requests_are_refused_with_the_reason(
    kind: int, payload: bytes, why: str
) -> None:
    with pytest.raises(WireError, match=why):
        nss_wire.parse_request(kind, payload)
