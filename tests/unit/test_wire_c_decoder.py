"""The C decoders of nss_shim/wire.h, run over the shared wire vectors and hostile variants of them.

nss_shim/tests/wire_decode.c prints what wire.h decodes in getent's line format
(or `error`); it also re-decodes every accepted record into every smaller
buffer, which must fail cleanly, and groups into misaligned buffers, whose
gr_mem must stay aligned. Memory errors are caught by running it under valgrind.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from rosterd import nss_wire

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "wire_vectors"
NATIVE = REPO / "build" / "native"
WIRE_DECODE = NATIVE / "wire_decode"
VALGRIND = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect"]


@pytest.fixture(scope="module", autouse=True)
def _built() -> None:
    subprocess.run(["make", "-s", "-C", str(REPO / "nss_shim"), f"OUT={NATIVE}", "check-tools"],
                   check=True, capture_output=True, timeout=300)


def _decode(kind: str, path: Path, *, valgrind: bool = False) -> subprocess.CompletedProcess[str]:
    argv = [*(VALGRIND if valgrind else []), str(WIRE_DECODE), kind, str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _vector_names() -> list[str]:
    return sorted(p.stem for p in VECTORS.glob("*.bin"))


def test_there_are_vectors_of_every_record_kind() -> None:
    kinds = {name.split("-", 1)[0] for name in _vector_names()}
    assert kinds >= {"passwd", "group", "shadow", "initgroups", "pwpage", "grpage"}


@pytest.mark.parametrize("name", _vector_names())
def test_the_c_decoder_agrees_with_each_vector(name: str) -> None:
    expected = (VECTORS / f"{name}.expected").read_text()
    result = _decode(name.split("-", 1)[0], VECTORS / f"{name}.bin", valgrind=True)
    assert result.returncode != 99, f"valgrind found a memory error:\n{result.stderr}"
    if expected.strip() == "error":
        assert (result.returncode, result.stdout) == (1, "error\n"), result.stderr
    else:
        assert (result.returncode, result.stdout) == (0, expected), result.stderr


@pytest.mark.parametrize("name", _vector_names())
def test_every_truncation_and_corruption_of_a_vector_is_decoded_or_rejected_safely(
    name: str,
) -> None:
    result = subprocess.run(
        [*VALGRIND, str(WIRE_DECODE), "--mutate", name.split("-", 1)[0],
         str(VECTORS / f"{name}.bin")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout}{result.stderr}"
    assert "variants decoded or rejected" in result.stdout


_ALICE = nss_wire.encode_passwd(name=b"alice", uid=20000, gid=20000, gecos=b"Alice",
                                home=b"/home/alice", shell=b"/bin/bash")
_GROUP_HEAD = struct.pack("<I", 20100) + nss_wire.encode_string(b"g") + nss_wire.encode_string(b"x")

# Hostile bytes beyond the shared vectors, each of which the C decoder must reject.
HOSTILE = {
    "a NUL inside a group member": (
        "group", _GROUP_HEAD + struct.pack("<I", 1) + nss_wire.encode_string(b"bo\0b")),
    "a member list shorter than its count": (
        "group", _GROUP_HEAD + struct.pack("<I", 2) + nss_wire.encode_string(b"bob")),
    "a member string running past the end": (
        "group", _GROUP_HEAD + struct.pack("<IH", 1, 0xFFFF) + b"bob"),
    "a shadow record cut inside its days": (
        "shadow", nss_wire.encode_shadow(name=b"alice", locked=False)[:-2]),
    "a shadow record with trailing bytes": (
        "shadow", nss_wire.encode_shadow(name=b"alice", locked=False) + b"\x01"),
    "a NUL inside a shadow password": (
        "shadow", nss_wire.encode_string(b"alice") + nss_wire.encode_string(b"*\0")
        + struct.pack("<6i", -1, -1, -1, -1, -1, -1)),
    "a gid list one gid longer than its count": ("initgroups", struct.pack("<III", 1, 5, 6)),
    "a gid list with a stray byte": ("initgroups", struct.pack("<II", 1, 5) + b"\0"),
    "an empty passwd payload": ("passwd", b""),
    "a page claiming four billion records": (
        "pwpage", struct.pack("<IQ", 0xFFFFFFFF, 0) + _ALICE),
    "a page with a truncated head": ("grpage", struct.pack("<I", 0)),
    "a page with a record too many": ("pwpage", nss_wire.encode_page([_ALICE], 0) + _ALICE),
}


@pytest.mark.parametrize("case", sorted(HOSTILE), ids=sorted(HOSTILE))
def test_hostile_records_are_rejected(case: str, tmp_path: Path) -> None:
    kind, data = HOSTILE[case]
    path = tmp_path / "vector.bin"
    path.write_bytes(data)
    result = _decode(kind, path, valgrind=True)
    assert (result.returncode, result.stdout) == (1, "error\n"), result.stderr


def test_extreme_values_decode_exactly(tmp_path: Path) -> None:
    """i32 days below zero, u32 IDs at the top, and a 65535-byte field all survive intact."""
    shadow = (nss_wire.encode_string(b"old") + nss_wire.encode_string(b"!*")
              + struct.pack("<6i", 19000, 0, 99999, 7, -2147483648, 2147483647))
    (tmp_path / "shadow.bin").write_bytes(shadow)
    result = _decode("shadow", tmp_path / "shadow.bin")
    assert result.stdout == "old:!*:19000:0:99999:7:-2147483648:2147483647:\n"

    long_gecos = b"g" * 0xFFFF
    passwd = nss_wire.encode_passwd(name=b"big", uid=4294967295, gid=4294967295,
                                    gecos=long_gecos, home=b"/", shell=b"/bin/sh")
    (tmp_path / "passwd.bin").write_bytes(passwd)
    result = _decode("passwd", tmp_path / "passwd.bin")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"big:x:4294967295:4294967295:{'g' * 0xFFFF}:/:/bin/sh\n"
