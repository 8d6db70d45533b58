"""Atomic file writes: a reader sees the old file or the whole new one, never a part of either.

The data goes to a temporary file in the target's own folder (a rename is atomic only within one
file system), is flushed to disk (fsync) and moved over the target with ``os.replace``; the folder
is then fsynced so that the rename itself survives a power cut (POSIX). On any error, a full disk
or a kill included, the temporary file is removed and the target is left as it was. Used for
training checkpoints, ``checks.json``, ``run.json`` and executed notebooks; imports nothing of
ssdlib.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; return ``path``."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return write_with(path, lambda fh: fh.write(payload))


def write_with(path: str | Path, dump: Callable[[BinaryIO], object]) -> Path:
    """Atomically write whatever ``dump(file)`` writes into the binary ``file`` (e.g. ``torch.save``
    streaming a checkpoint, with no copy of it in memory); return ``path``.

    The folder is created if missing. The new file gets the usual permissions (0o666 less the umask).
    If ``dump`` raises, the target is left as it was. A full disk is raised as ``OSError(ENOSPC)`` naming
    ``path``, also where ``dump`` turned it into its own error (``torch.save``: "unexpected pos").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            sink = _Sink(fh)
            try:
                dump(sink)
            except Exception as err:
                if sink.failure is None or sink.failure is err:
                    raise
                raise sink.failure from err
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


class _Sink:
    """The file that ``dump`` writes into, remembering the error of a failed write: ``torch.save`` reports
    a full disk as "unexpected pos", and this is how the real cause is known."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.failure = fh, None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as err:
            self.failure = err
            raise

    def flush(self) -> None:
        self.fh.flush()


def _open_temp(path: Path) -> tuple[int, Path]:
    """A new hidden ``.<name>.<random>.tmp`` beside ``path``, opened for writing (mode 0o666 less the
    umask, unlike ``tempfile.mkstemp``'s 0o600, so the result reads as any other file of the run)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}: remove its stale .*.tmp files")


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
