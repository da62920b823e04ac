"""The one exception type users see: the CLI prints its message as a single line and exits non-zero."""


class SynthcptError(Exception):
    """A problem with the user's input, config or environment, explained in one line."""
