"""The one error path: a user's mistake or a bad file ends in one line, never a traceback.

Raise ``UserError('what, where; what to do')`` (or ``SystemExit('error: ...')``, which the
project used before and which behaves the same) anywhere: the process prints
``error: <message>`` on stderr and exits with status 1. Only an unexpected exception (a bug)
prints a traceback.
"""


class UserError(SystemExit):
    """A mistake of the user or a bad input file. The message is one line:
    ``<what is wrong>, <where: file, line, option>; <what to do>``; it is printed as
    ``error: <message>`` and the process exits with status 1."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(f'error: {message}')
