"""Async services that own the daemon's state: workspaces, runs and the status document."""
