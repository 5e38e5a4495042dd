"""driftloop's sync service (built in a later issue); it imports so the workspace is whole."""
