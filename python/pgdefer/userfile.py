"""Reading the files users name (topology files, boot logs) with one clear, typed error each."""

from __future__ import annotations

import os
import stat
from pathlib import Path

#: Largest file read by default. A boot log of one boot is well under 2 MiB (the kernel's printk ring buffer
#: is at most 32 MiB, CONFIG_LOG_BUF_SHIFT <= 25); a topology file a few KiB. Checked before reading, so
#: /dev/zero or a 100 GB file answer at once.
DEFAULT_LIMIT = 64 << 20

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_user_file(path, what: str, error: type, limit: int = DEFAULT_LIMIT) -> bytes:
    """The bytes of ``path``; a missing file, a directory, a FIFO or device, a file larger than ``limit``
    bytes or an unreadable file raises ``error`` with one line naming the path and ``what`` it should have
    been (e.g. "topology file", "boot log").

    The file is opened non-blocking and checked with fstat before anything is read, so a FIFO never blocks
    and /dev/zero is refused instead of read until memory runs out.
    """
    path = Path(os.fspath(path))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}") from None
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path}: is {_kind(st.st_mode)}, not a {what} (pgdefer reads regular files only)")
        if st.st_size > limit:
            raise error(f"{path}: a {what} of {st.st_size} bytes; pgdefer reads at most {limit} bytes "
                        f"({limit >> 20} MiB)")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)  # the file may grow after fstat
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}") from None
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(f"{path}: a {what} of more than {limit} bytes; pgdefer reads at most {limit} bytes")
    return data
