"""The one exception type for bad user input.

Anything the user can fix (a missing file, a bad label line, an unknown name, a value out of
range) raises `InputError` with one line that names the file, line or key and the value. The
CLI prints that line and exits with code 2; it never shows a traceback for these.
"""


class InputError(ValueError):
    """Bad user input: the message is a single line meant for the user."""


class TrainingError(RuntimeError):
    """Training itself failed (a non-finite loss, say): the trial is recorded as failed."""
