"""Files as the tests lay them out and look at them, below a folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path below ``root`` with its bytes (None for folders)."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in filenames:
            full = os.path.join(dirpath, f)
            out[os.path.relpath(full, root)] = Path(full).read_bytes()
    return out


def plant(path: Path, data: bytes = b"x") -> Path:
    """``data`` written at ``path``, its folders made (private) first."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_bytes(data)
    return path


def write_json(path: Path, record: dict[str, Any]) -> None:
    """``record`` as JSON at ``path``, its folders made (private) first."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(json.dumps(record))
