"""Transports: they translate bytes to calls and back, and hold no business rules."""
