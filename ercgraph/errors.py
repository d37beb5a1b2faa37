"""The one exception type users see.

Every error caused by bad input (a file, a column, a config key, a cache) is an
:class:`ErcgraphError` whose message names the culprit and what was expected. The CLI prints it
on one line and exits with status 2; anything else is a bug and keeps its traceback.
"""


class ErcgraphError(Exception):
    """A user-facing error: bad data, bad config, or a missing file."""
