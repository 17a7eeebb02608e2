"""TLS for the tests' HTTPS clients: trust exactly one test CA."""

from __future__ import annotations

import ssl
from pathlib import Path


def trusting(ca_file: Path | str) -> ssl.SSLContext:
    """A client context that verifies servers against `ca_file` alone (not the host's CAs)."""
    return ssl.create_default_context(cafile=str(ca_file))
