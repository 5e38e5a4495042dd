"""Hera definitions of driftloop's workflows (built in a later issue)."""
