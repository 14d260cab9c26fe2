"""Error types that map to exit codes.

`UserError` (and subclasses) are mistakes a user can fix: the CLI prints the message without a
traceback and exits 2. Anything else is a bug or an infrastructure fault and exits 1.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class for errors the harness raises on purpose."""

    exit_code = 1


class UserError(HarnessError):
    """Bad input or configuration: exit code 2, message only."""

    exit_code = 2


class ConfigError(UserError):
    """A configuration value is wrong or points at something that does not exist."""


class DataError(UserError):
    """A data file is malformed. The message always names the file, the line and the field."""

    def __init__(self, path: str, line: int | None, field: str | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.problem = problem
        where = path
        if line is not None:
            where += f", line {line}"
        if field:
            where += f", field '{field}'"
        super().__init__(f"{where}: {problem}")


class BackendError(HarnessError):
    """A backend failed while answering (server gone, out of memory). What finished is stored."""
