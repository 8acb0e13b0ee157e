"""Errors shared by every adapter."""


class BackendUnavailable(Exception):
    """The storage behind an adapter cannot be reached or is misconfigured.

    The message is one line naming the resource and the setting that names it.
    """
