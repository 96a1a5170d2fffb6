"""Render mail from the jinja2 templates in ``wallie/templates``.

``NAME.txt.j2`` is the plain-text part and ``NAME.html.j2`` the HTML part.
HTML templates are autoescaped, so contact names, reminder texts and
conversation titles (all user or contact text) never reach the HTML
unescaped; text templates are not, because plain text needs no escaping.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from ..notify import MailContent


def _autoescape(template_name: str | None) -> bool:
    return template_name is not None and template_name.endswith(".html.j2")


def _local_time(moment: datetime | None, zone: str) -> str:
    if moment is None:
        return ""

    return moment.astimezone(ZoneInfo(zone)).strftime("%a %d %b %H:%M")


def _day(day: date) -> str:
    return day.strftime("%A %d %B %Y")


@functools.cache
def environment() -> jinja2.Environment:
    """Return the template environment, built once."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("wallie", "templates"),
        autoescape=_autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["local_time"] = _local_time
    env.filters["day"] = _day
    return env


def render_mail(name: str, subject: str, context: dict[str, Any]) -> MailContent:
    """Render the text and HTML parts of template ``name`` with ``context``."""
    env = environment()
    text = env.get_template(f"{name}.txt.j2").render(context)
    html = env.get_template(f"{name}.html.j2").render(context)
    return MailContent(subject=subject, text=text, html=html)
