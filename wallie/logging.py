"""Logger naming: one logger per module or class, named after where it lives."""

from __future__ import annotations

import logging


def get_logger(module: str, name: str | None = None) -> logging.Logger:
    """Return the logger for ``module``, or for class ``name`` inside it.

    Examples:
      >>> get_logger("wallie.middleware.debounce", "Debounce").name
      'wallie.middleware.debounce.Debounce'
    """
    if name is None:
        return logging.getLogger(module)

    return logging.getLogger(f"{module}.{name}")
