"""Defines the refusals rosterd can give, each with text that is safe to show to a person."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)


class RosterError(Exception):
    """A refusal whose str() names what is wrong and how to fix it.

    The text never contains secrets, so admin.py may pass it to the client as is.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidName(RosterError):
    """A user or group name breaks the naming rules (names.py)."""


class InvalidValue(RosterError):
    """A value other than a name is malformed or out of range (an ID, a path, a shell)."""


class NameTaken(RosterError):
    """The name is held by another rosterd account or by the host's /etc files."""


class IdTaken(RosterError):
    """The UID or GID is held, was retired, or is reserved."""


class NotFound(RosterError):
    """The named user or group does not exist."""


class InUse(RosterError):
    """The object is still needed by another (a group that is some user's primary group)."""


class Conflict(RosterError):
    """The change clashes with the state of the store (a constraint the checks did not foresee)."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in the config file: the dotted key it concerns ("" for the file as a whole)."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigError(RosterError):
    """The config file cannot be used; carries every problem found, sorted by key."""

    def __init__(self, problems: Iterable[ConfigProblem], *, source: str = "") -> None:
        self.problems = sorted(problems, key=lambda p: (p.key, p.message))
        self.source = source
        where = f"config file {source}" if source else "config"
        if len(self.problems) == 1:
            text = f"{where}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  {problem}" for problem in self.problems)
            text = f"{where} has {len(self.problems)} problems:\n{lines}"
        super().__init__(text)
