"""rosterd: POSIX users and groups for hosts whose people sign in through an identity provider."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rosterd")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "unknown"
