"""The one exception type for mistakes a user can fix.

The CLI prints a ``FusionlabError`` as one line and exits non-zero; anything else
is a bug and keeps its traceback.
"""


class FusionlabError(Exception):
    """A user error: bad input, an unknown name, a file that is missing or malformed.

    The message must be one line that names the file / key / value and says what
    was expected.
    """
