"""Files that hold personal data (the database, portfolio files) are readable by their owner only.

A umask of 0022 would leave them readable by every local user; these helpers
create them 0600 (directories 0700) whatever the umask, and tighten a file of
ours that an earlier version left open.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def ensure_private_directory(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing directory is left as it is."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        os.chmod(path, DIRECTORY_MODE)  # mkdir's mode is filtered by the umask
    return path


def make_private(path: Path) -> None:
    """Take group and other permissions off an existing file of ours."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        os.chmod(path, mode & 0o700)


def create_private_file(path: Path) -> Path:
    """Create an empty file readable by its owner only, unless it exists (then it is made private)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        make_private(path)
    else:
        os.close(fd)
    return path


@contextmanager
def open_private(path: Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open(path, mode)`` for writing, the file created (or truncated) as 0600."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # an existing file keeps its old mode through O_CREAT
    with os.fdopen(fd, mode, **kwargs) as handle:
        yield handle
