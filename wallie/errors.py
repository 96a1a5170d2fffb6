"""Errors raised by the Wallie library.

The hierarchy is shallow: :class:`WallieError` at the base, one group per
area, and leaves named for the event.  Errors from drivers and client
libraries are wrapped at the boundary with ``raise ... from error``.
"""

from __future__ import annotations


class WallieError(Exception):
    """Base class for every error raised by Wallie."""

    def stored_text(self) -> str:
        """Return the error text that may be kept in run history.

        Errors whose message quotes user content (a line of a chat, say)
        override this to leave the quote out, because run history outlives
        the job and operators read it.
        """
        return str(self)


class ConfigurationError(WallieError):
    """Raised when a setting is missing or has an invalid value.

    Attributes:
      variable: The environment variable that holds the bad value.
    """

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable


class StorageError(WallieError):
    """Raised when the database cannot be reached or migrated."""


class MigrationError(StorageError):
    """Raised when a schema migration cannot be applied."""


class NotFound(WallieError):
    """Raised when a user, contact, run or other record does not exist.

    Attributes:
      kind: What was looked up, for example ``"user"``.
      key: The value that matched nothing.
    """

    def __init__(self, kind: str, key: object, hint: str = "") -> None:
        message = f"No {kind} matches {key!r}."
        if hint:
            message = f"{message} {hint}"

        super().__init__(message)
        self.kind = kind
        self.key = key


class InvalidArguments(WallieError):
    """Raised when arguments do not fit an actor's signature.

    Attributes:
      actor_name: The actor whose signature rejected the arguments.
    """

    def __init__(self, actor_name: str, message: str) -> None:
        super().__init__(message)
        self.actor_name = actor_name
