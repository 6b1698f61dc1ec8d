"""Reading the files users name (topology files, boot logs) with one clear, typed error each."""

from __future__ import annotations

import os
from pathlib import Path


def read_user_file(path, what: str, error: type) -> bytes:
    """The bytes of ``path``; a missing file, a directory or an unreadable file raises ``error`` with one
    line naming the path and ``what`` it should have been (e.g. "topology file", "boot log")."""
    path = Path(os.fspath(path))
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}") from None
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror or e}") from None
