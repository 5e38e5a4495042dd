"""driftloop's monitor service (built in a later issue); it imports so the workspace is whole."""
