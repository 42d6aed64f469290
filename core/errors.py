"""Errors that carry a one-line message meant for the person using the lab.

Anything raised as a ``QlabError`` is bad input or an unavailable resource: the CLI
prints its message and exits 2, the UI shows it in an error box. Anything else is a
bug and is allowed to surface as one.
"""


class QlabError(Exception):
    """A problem the user can fix; ``str(err)`` is a single line naming it and the fix."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class SourceError(QlabError):
    """A model name, hub id or folder that cannot be turned into a model."""


class RecipeError(QlabError):
    """An unknown recipe, a bad parameter, or a recipe that cannot run here."""


class DataError(QlabError):
    """Input data that is missing, empty, binary, mis-encoded or lacks columns."""


def first_line(err: BaseException | str, limit: int = 300) -> str:
    """The first line of an error's message (or of a text), stripped and cut at ``limit`` characters; "" if empty.

    The one place a multi-line message (a library's, a traceback's) becomes a line a person can read.
    """
    return (str(err).strip().splitlines() or [""])[0][:limit].rstrip()


class ExportError(QlabError):
    """An export that cannot be written: a bad or occupied output folder, a damaged or missing store entry, a cap."""
