"""driftloop's stream service: transactions → windowed customer aggregates → Feast.

Run it as a process (``driftloop-stream run``); other services never import it.
"""

from driftloop_stream._service import StreamService, batch_name, batch_starts
from driftloop_stream._settings import StreamSettings

__all__ = ["StreamService", "StreamSettings", "batch_name", "batch_starts"]
