"""driftloop's monitor: predictions (+ labels) → whylogs windows → drift events.

Run it as a process (``driftloop-monitor run``); other services never import it.
"""

from driftloop_monitor._service import MonitorService
from driftloop_monitor._settings import MonitorSettings

__all__ = ["MonitorService", "MonitorSettings"]
