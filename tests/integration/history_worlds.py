"""Session-wide worlds of the training and retraining tests (fixtures, imported by
conftest.py)."""

from __future__ import annotations
