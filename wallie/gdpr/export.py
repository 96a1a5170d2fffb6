"""Export everything stored about a user as a zip of JSON files, for the right of access.

The zip holds one ``{table}.json`` per table that has rows of the user (a
list of objects, ids for foreign keys), ``manifest.json`` with the row
counts, and the user's media files under ``media/`` at their stored paths.
Columns with secret-looking names (tokens, passwords, keys) are replaced by
``"[redacted]"``: they are credentials, not data about the person.
"""

from __future__ import annotations

import json
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..db.fields import utcnow
from ..db.models import MODELS, Attachment, as_dict
from ..logging import get_logger
from ..middleware.run_history import REDACTED, SECRET_NAME
from ..settings import Settings
from . import external
from .rules import check_rules, export_condition

logger = get_logger(__name__)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()

    if isinstance(value, Decimal):
        return str(value)

    if isinstance(value, bytes):
        return value.hex()

    return str(value)


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: (REDACTED if SECRET_NAME.search(key) else value) for key, value in row.items()}


def export_user(user_id: int, path: Path, settings: Settings) -> dict[str, Any]:
    """Write the export of ``user_id`` to ``path`` and return its manifest.

    The zip is written to a temporary name and renamed at the end, so a
    failed export leaves no partial file at ``path``.
    """
    check_rules()
    partial = path.with_name(f".{path.name}.partial")
    tables: dict[str, int] = {}
    media = 0
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for model in MODELS:
            condition = export_condition(model, user_id)
            if condition is None:
                continue

            rows = [_row(as_dict(row)) for row in model.select().where(condition).order_by(model._meta.primary_key)]
            if not rows:
                continue

            table = model._meta.table_name
            tables[table] = len(rows)
            text = json.dumps(rows, indent=2, ensure_ascii=False, default=_json_value)
            archive.writestr(f"{table}.json", text)

        media = _write_media(archive, user_id, settings)
        manifest = {
            "user_id": user_id,
            "exported_at": utcnow().isoformat(),
            "tables": tables,
            "media_files": media,
        }
        archive.writestr("manifest.json", json.dumps(manifest, indent=2))

    partial.replace(path)
    logger.info("Exported user %d: %d tables, %d media files.", user_id, len(tables), media)
    return manifest


def _write_media(archive: zipfile.ZipFile, user_id: int, settings: Settings) -> int:
    root = settings.media_dir.resolve()
    written: set[Path] = set()
    paths = Attachment.select(Attachment.path).where(Attachment.user == user_id).tuples()
    candidates = [external.media_path(settings, row[0]) for row in paths]
    candidates += external.user_media_files(settings, user_id)
    for path in candidates:
        if path is None or path in written or not path.is_file():
            continue

        archive.write(path, f"media/{path.relative_to(root).as_posix()}")
        written.add(path)

    return len(written)
