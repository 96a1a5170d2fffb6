"""Errors of GDPR deletion and export."""

from __future__ import annotations

from ..errors import WallieError


class UnclassifiedModel(WallieError):
    """Raised when a model has no deletion rule, so deletion cannot be complete.

    Attributes:
      table: The table of the model without a rule.
    """

    def __init__(self, table: str) -> None:
        super().__init__(
            f"Table {table!r} has no GDPR deletion rule. Give its model a `user` "
            "foreign key or add it to wallie.gdpr.rules.EXPLICIT_RULES."
        )
        self.table = table


class PersonalDataInReceipt(WallieError):
    """Raised when a reference or requester looks like an email or phone number."""


class DeletionInProgress(WallieError):
    """Raised when another process is running the same deletion request."""
