"""Which rows each deletion scope removes, as per-table conditions.

A step is a table and the condition that selects its rows to delete.
Steps run children first (the reverse of :data:`~wallie.db.models.MODELS`),
so no row is deleted before the rows that point to it, and every count in a
receipt comes from the batch that deleted the rows rather than from a
database cascade.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import peewee

from ..db.models import (
    MODELS,
    BaseModel,
    Contact,
    Conversation,
    ConversationParticipant,
    Import,
    KnowledgeDocument,
    Message,
    User,
)
from .rules import user_condition, user_foreign_keys

#: Conversation ids per chunk when looking for conversations left empty, well
#: under SQLite's limit of 32,766 bound variables per statement.
ID_CHUNK = 500


@dataclass(frozen=True)
class Step:
    """Rows of one table to delete."""

    model: type[BaseModel]
    condition: peewee.Expression

    @property
    def table(self) -> str:
        """Name of the table the step deletes from."""
        return self.model._meta.table_name


def chunks(ids: Sequence[int], size: int = ID_CHUNK) -> Iterator[Sequence[int]]:
    """Yield ``ids`` in slices of at most ``size``."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def user_steps(user_id: int) -> list[Step]:
    """Return the steps that delete every row of ``user_id``, the user row last."""
    steps = []
    for model in reversed(MODELS):
        condition = user_condition(model, user_id)
        if condition is not None:
            steps.append(Step(model, condition))

    return steps


def cascade_steps(roots: dict[type[BaseModel], peewee.Expression], user_id: int) -> list[Step]:
    """Return the steps that delete the ``roots`` and every row that cascades from them.

    A row cascades from a deleted row when it has an ``ON DELETE CASCADE``
    foreign key to it; ``SET NULL`` keys are left to the database.  Every
    condition is limited to the user's rows, so another account is never
    touched.
    """
    conditions: dict[type[BaseModel], peewee.Expression] = {}
    for model in MODELS:
        terms = [roots[model]] if model in roots else []
        for field in model._meta.sorted_fields:
            if not isinstance(field, peewee.ForeignKeyField):
                continue

            parent = field.rel_model
            cascades = (field.on_delete or "").upper() == "CASCADE"
            if parent is model or parent not in conditions or not cascades:
                continue

            key = parent._meta.primary_key
            terms.append(field.in_(parent.select(key).where(conditions[parent])))

        if not terms:
            continue

        condition = functools.reduce(operator.or_, terms)
        owners = user_foreign_keys(model)
        if owners:
            condition = (owners[0] == user_id) & condition

        conditions[model] = condition

    return [Step(model, conditions[model]) for model in reversed(MODELS) if model in conditions]


def contact_roots(user_id: int, contact_id: int) -> dict[type[BaseModel], peewee.Expression]:
    """Return the root rows of a contact erasure: the contact and the messages it sent."""
    return {
        Contact: (Contact.user == user_id) & (Contact.id == contact_id),
        Message: (Message.user == user_id) & (Message.sender == contact_id),
    }


def import_roots(user_id: int, import_id: int) -> dict[type[BaseModel], peewee.Expression]:
    """Return the root rows of an import deletion: the import and what it created."""
    return {
        Import: (Import.user == user_id) & (Import.id == import_id),
        Message: (Message.user == user_id) & (Message.source_import == import_id),
        KnowledgeDocument: (KnowledgeDocument.user == user_id)
        & (KnowledgeDocument.source_import == import_id),
    }


def contact_conversations(user_id: int, contact_id: int) -> list[int]:
    """Return the conversations a contact erasure may leave empty, in id order.

    These are the conversations the contact took part in, sent messages to
    or is the contact of.
    """
    queries = (
        ConversationParticipant.select(ConversationParticipant.conversation).where(
            (ConversationParticipant.user == user_id)
            & (ConversationParticipant.contact == contact_id)
        ),
        Message.select(Message.conversation).where(
            (Message.user == user_id) & (Message.sender == contact_id)
        ),
        Conversation.select(Conversation.id).where(
            (Conversation.user == user_id) & (Conversation.contact == contact_id)
        ),
    )
    ids: set[int] = set()
    for query in queries:
        ids.update(row[0] for row in query.distinct().tuples())

    return sorted(ids)


def import_conversations(user_id: int, import_id: int) -> list[int]:
    """Return the conversations holding messages of an import, in id order."""
    query = Message.select(Message.conversation).where(
        (Message.user == user_id) & (Message.source_import == import_id)
    )
    return sorted({row[0] for row in query.distinct().tuples()})


def empty_conversations(
    candidates: Sequence[int], excluding: peewee.Expression | None = None
) -> list[int]:
    """Return the ``candidates`` with no message left.

    Parameters:
      candidates: Conversation ids to check.
      excluding: Messages to count as already deleted, for a dry run.
    """
    empty = []
    for chunk in chunks(candidates):
        remaining = Message.select(Message.conversation).where(Message.conversation.in_(chunk))
        if excluding is not None:
            remaining = remaining.where(~excluding)

        busy = {row[0] for row in remaining.distinct().tuples()}
        empty.extend(conversation for conversation in chunk if conversation not in busy)

    return empty


def conversation_steps(user_id: int, conversation_ids: Iterable[int]) -> list[Step]:
    """Return the steps that delete ``conversation_ids`` and what cascades from them."""
    ids = list(conversation_ids)
    roots = {Conversation: (Conversation.user == user_id) & Conversation.id.in_(ids)}
    return cascade_steps(roots, user_id)


def is_user_step(step: Step) -> bool:
    """Return whether ``step`` deletes the user row itself."""
    return step.model is User
