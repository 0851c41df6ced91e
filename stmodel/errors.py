"""Exceptions that reach the user as a one-line message (exit code 2), not a traceback."""


class UserError(Exception):
    """A mistake the user can fix: wrong file, variable, units, flag.

    The message must name the file, the variable and what was expected.
    """


class DataError(UserError):
    """Input data that cannot be read or is not what stmodel expects."""
