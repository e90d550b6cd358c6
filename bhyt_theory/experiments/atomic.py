"""One way to write a result file: to a unique temporary name in the same folder, then
an atomic rename, so that a reader (a resumed sweep, a restarted training run, the
report) sees either no file or the whole file — never a half-written one."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Create or replace ``path`` with what ``write(temporary)`` writes.

    The temporary file is opened by ``write`` itself, so its mode follows the umask
    (unlike ``tempfile.mkstemp``'s 0600); it is removed if ``write`` fails or the run
    is interrupted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
