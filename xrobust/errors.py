"""The one exception type the command-line entry points turn into a single clear line and exit code 2."""


class XrobustError(Exception):
    """A user-facing problem (bad input, bad config, missing package): the message says what and where."""


class SweepError(XrobustError):
    """A problem with the whole multirun (how it is launched), not with one job: every job would fail alike, so it
    stops the sweep at once, where a job's XrobustError lets the others go on."""
