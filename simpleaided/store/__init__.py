"""Every blocking adapter to something persistent: the file-backed run store (layout, atomic
writes, permissions, scanning), the vault file, and the SQL drivers (``sql/``)."""
