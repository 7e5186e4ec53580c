"""The kit's user errors, one small module every entry point imports (no torch, no timm).

- SetupError: a run (or an evaluation, a prediction) cannot start as configured; the message says what
  to do, and the command lines print it as one `error:` line, without a traceback, and exit with 2.
- TrainingInterrupted: SIGINT/SIGTERM arrived during training and a checkpoint was written.
- user_message: an error's text without the traceback a DataLoader worker wraps around it.
"""


class SetupError(ValueError):
    """A run cannot start as configured (sizes, a too small training split, a resume with other settings).
    The message says what to do; the command line prints it without a traceback."""


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was written. `resume=True` continues from it."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def user_message(error: Exception) -> str:
    """The text of a user error without the worker's traceback that a DataLoader worker process wraps
    around an exception raised there (a bad mask found while loading): only the original message."""
    text = str(error)
    marker = f"{type(error).__name__}: "
    if "Original Traceback" in text and marker in text:
        return text.rsplit(marker, 1)[1].strip()
    return text
