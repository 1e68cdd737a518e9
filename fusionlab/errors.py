"""The one exception type for mistakes a user can fix, and how its messages name a YAML value's kind.

The CLI prints a ``FusionlabError`` as one line and exits non-zero; anything else
is a bug and keeps its traceback.
"""
from typing import Any


class FusionlabError(Exception):
    """A user error: bad input, an unknown name, a file that is missing or malformed.

    The message must be one line that names the file / key / value and says what
    was expected.
    """


def one_line(exc: FusionlabError) -> str:
    """The error's message; one raised in a DataLoader worker reaches the loop wrapped in the worker's
    traceback (torch re-raises it with that text), so its own message is the text's last line."""
    text = str(exc)
    if "Original Traceback" not in text:
        return text
    return text.strip().splitlines()[-1].partition("FusionlabError: ")[2] or text


def yaml_kind(value: Any) -> str:
    """``a string``, ``an integer``, ``null`` ...: what a YAML value is, in an error message."""
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
