"""Spans of time as people write them in commands and policies: ``30d``, ``12h``, ``45m``."""

from __future__ import annotations

import re
from datetime import timedelta

_SPAN = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_span(text: str) -> timedelta:
    """``30d``, ``12h`` or ``45m`` as a timedelta; anything else is a ValueError."""
    match = _SPAN.match(text.strip())
    if not match:
        raise ValueError(f"{text!r}: use a number of days, hours or minutes such as 30d or 12h")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
