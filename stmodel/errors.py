"""Exceptions that reach the user as a one-line message (exit code 2), not a traceback."""


class UserError(Exception):
    """A mistake the user can fix: wrong file, variable, units, flag.

    The message must name the file, the variable and what was expected.
    """


class Interrupted(Exception):
    """A signal stopped the work after it saved what it had; exit 128 + the signal."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


class DataError(UserError):
    """Input data that cannot be read or is not what stmodel expects."""
