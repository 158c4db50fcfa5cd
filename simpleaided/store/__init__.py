"""The file-backed run store: layout, atomic writes, permissions, scanning (synchronous)."""
