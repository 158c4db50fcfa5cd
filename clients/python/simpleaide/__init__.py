"""Thin Python client and ``simpleaide`` CLI for simpleaided; speaks only the wire protocol."""
