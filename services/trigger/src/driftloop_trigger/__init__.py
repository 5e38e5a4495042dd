"""driftloop's trigger service (built in a later issue); it imports so the workspace is whole."""
