"""Running the demo's loop inside a test module and leaving nothing behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from driftloop_demo import DemoConfig, DemoResult, run_demo, tear_down

from driftloop.settings import Settings


@contextmanager
def demo_loop(config: DemoConfig, root: Path, prefix: str) -> Iterator[DemoResult]:
    """Run the loop under ``root`` on topics ``<prefix>-<random>.*``; afterwards remove
    its Serve applications (later tests deploy their own) and its topics."""
    base = Settings(topic_prefix=f"{prefix}-{uuid.uuid4().hex[:6]}.")
    try:
        yield run_demo(base, config, root, echo=print)
    finally:
        tear_down(base)
