"""How each table refers to a user, walked from :data:`~wallie.db.models.MODELS`.

A model with a foreign key to :class:`~wallie.db.models.User` needs no
entry: account deletion removes its rows by that key and export reads them
by it.  Every other model must be listed in :data:`EXPLICIT_RULES`;
:func:`rule_for` raises :class:`~wallie.gdpr.errors.UnclassifiedModel` for a
model that is neither, so a table added later cannot be left out silently.
"""

from __future__ import annotations

import peewee

from ..db.models import MODELS, AuditLog, BaseModel, DeletionRequest, JobRun, ScheduleTick, User
from .errors import UnclassifiedModel

#: Rows are the user's when a foreign key to ``user`` holds the user id.
USER_FOREIGN_KEY = "user_foreign_key"
#: Rows are the user's when the plain integer column ``user_id`` holds the id.
PLAIN_USER_ID = "plain_user_id"
#: Rows with the user id are deleted, except deletion receipts, which hold
#: ids and counts only and prove the erasure.
KEEP_RECEIPTS = "keep_receipts"
#: Rows are kept: they hold ids and progress only, and the deleted-user check
#: of queued messages reads them.
KEEP = "keep"
#: The table refers to no user.
NO_USER_DATA = "no_user_data"

#: Audit log actions that are deletion receipts, kept after an account is deleted.
RECEIPT_ACTIONS = ("gdpr.requested", "gdpr.receipt")

#: Rules of the models that have no foreign key to ``user``, by table name.
EXPLICIT_RULES: dict[str, str] = {
    JobRun._meta.table_name: PLAIN_USER_ID,
    AuditLog._meta.table_name: KEEP_RECEIPTS,
    DeletionRequest._meta.table_name: KEEP,
    ScheduleTick._meta.table_name: NO_USER_DATA,
}


def user_foreign_keys(model: type[BaseModel]) -> list[peewee.ForeignKeyField]:
    """Return the foreign keys of ``model`` that point to :class:`User`."""
    return [
        field
        for field in model._meta.sorted_fields
        if isinstance(field, peewee.ForeignKeyField) and field.rel_model is User
    ]


def rule_for(model: type[BaseModel]) -> str:
    """Return how ``model`` refers to a user.

    Raises:
      UnclassifiedModel: The model has no user foreign key and no explicit rule.
    """
    table = model._meta.table_name
    if table in EXPLICIT_RULES:
        return EXPLICIT_RULES[table]

    if model is User or user_foreign_keys(model):
        return USER_FOREIGN_KEY

    raise UnclassifiedModel(table)


def check_rules() -> None:
    """Check that every model in MODELS has a rule.

    Raises:
      UnclassifiedModel: The first model without one.
    """
    for model in MODELS:
        rule_for(model)


def user_condition(model: type[BaseModel], user_id: int) -> peewee.Expression | None:
    """Return the condition that selects the rows of ``model`` belonging to ``user_id``.

    Returns None for tables whose rows are kept or refer to no user.  For
    the audit log it selects the entries that are not deletion receipts.
    """
    rule = rule_for(model)
    if model is User:
        return User.id == user_id

    if rule == USER_FOREIGN_KEY:
        condition: peewee.Expression | None = None
        for field in user_foreign_keys(model):
            term = field == user_id
            condition = term if condition is None else (condition | term)

        return condition

    if rule == PLAIN_USER_ID:
        return model._meta.fields["user_id"] == user_id

    if rule == KEEP_RECEIPTS:
        return (AuditLog.user_id == user_id) & AuditLog.action.not_in(RECEIPT_ACTIONS)

    return None


def export_condition(model: type[BaseModel], user_id: int) -> peewee.Expression | None:
    """Return the condition that selects the rows of ``model`` a data export includes.

    Export includes every row that mentions the user, receipts and deletion
    requests too, so the user sees what is kept about them.
    """
    rule = rule_for(model)
    if rule in (KEEP_RECEIPTS, KEEP):
        return model._meta.fields["user_id"] == user_id

    return user_condition(model, user_id)
