"""Session-wide worlds of the serving tests (fixtures, imported by conftest.py)."""

from __future__ import annotations
