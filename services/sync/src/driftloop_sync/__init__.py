"""The local stand-in for ArgoCD + KubeRay: Ray Serve reconciled to the serve configs in git.

Run it as ``driftloop-sync run``; it is never imported by other services."""

from driftloop_sync._compose import InvalidConfig, compose
from driftloop_sync._service import SyncService
from driftloop_sync._settings import SyncSettings

__all__ = ["InvalidConfig", "SyncService", "SyncSettings", "compose"]
