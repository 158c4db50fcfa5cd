"""simpleaided: the per-user daemon that owns SimpleAide's run store and global status."""

__version__ = "0.1.0"
