"""Files macscalc writes and the links it follows, in one place (README: Security model).

Every output (``-o``, ``--plot``, ``export``, ``calibrate``'s profile) goes through
:func:`write_atomic`: whole or not at all, never onto something that is not a regular
file (a device, a FIFO, a folder), and through a symbolic link to its target, as the
README promises. Inputs that may be links (CSVs, ONNX external data) are checked by
:func:`inside` before they are opened, so a link cannot lead a run to another file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from macscalc.core.errors import MacscalcError, show

_TMP_NAME_CHARS = 100  # of the target's name kept in the temporary file's name


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write text (UTF-8) or bytes (an ONNX model, a plot) via a temporary file and rename,
    so a failure leaves no partial file.

    A link is written through to its target. Only a regular file is replaced: a device,
    FIFO, socket or folder is refused before anything is written. The file keeps the mode
    of the one it replaces; a new one gets the umask's default. SIGTERM or SIGINT during
    the write removes the temporary file, then goes to the handler it would have gone to;
    SIGKILL cannot be caught and may leave the hidden ``.NAME.*.tmp`` behind."""
    shown = show(str(path))
    if path.name in ("", ".", ".."):
        raise MacscalcError(f"cannot write {shown}: not a file name")
    try:
        target = Path(os.path.realpath(path)) if path.is_symlink() else path
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except (OSError, ValueError) as e:
        raise MacscalcError(f"cannot write {shown}: {_reason(e)}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise MacscalcError(f"cannot write {shown}: not a regular file (only a regular file "
                            "is replaced)")
    tmp = target.with_name(f".{target.name[:_TMP_NAME_CHARS]}.{os.urandom(4).hex()}.tmp")
    try:
        with _signals_raise():
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
            with os.fdopen(fd, "wb") as f:
                f.write(text.encode("utf-8") if isinstance(text, str) else text)
            if mode is not None:
                os.chmod(tmp, stat.S_IMODE(mode))
            os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, _Interrupted):
            signal.raise_signal(e.signum)  # its own handler, restored: the default ends us
            raise MacscalcError(f"{shown} not written: interrupted") from None
        if isinstance(e, (OSError, ValueError)):
            raise MacscalcError(f"cannot write {shown}: {_reason(e)}") from None
        raise


def _reason(e: Exception) -> str:
    if isinstance(e, OSError) and e.errno == errno.ENOTDIR:
        return "a part of the path is not a folder"
    if isinstance(e, OSError) and e.errno == errno.ENAMETOOLONG:
        return "the name is too long"
    return getattr(e, "strerror", None) or str(e) or "not a usable path"


def inside(path: Path, roots: tuple[Path, ...], where: str, file: str | None, what: str
           ) -> Path:
    """``path`` with its links followed, which must lie in one of ``roots`` (folders, which
    the message calls ``where``): a link may lead to a file there, never elsewhere. Errors
    name ``file`` and the input as ``what`` (which quotes at most an excerpt of its name)."""
    try:
        real = Path(os.path.realpath(path))
        folders = [Path(os.path.realpath(r)) for r in roots]
    except (OSError, ValueError) as e:
        raise MacscalcError(f"{what}: cannot read it ({_reason(e)})", file) from None
    if not any(real.is_relative_to(folder) for folder in folders):
        raise MacscalcError(f"{what} is outside {where} (links followed)", file)
    return real


class _Interrupted(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """While the body runs, SIGTERM and SIGINT raise :class:`_Interrupted` (after putting
    every handler back), so the caller can clean up first. Signals set to be ignored, and
    threads other than the main one (which may not set handlers), are left alone."""
    saved = {}
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGTERM, signal.SIGINT):
            handler = signal.getsignal(s)
            if handler not in (signal.SIG_IGN, None):
                saved[s] = handler

    def restore() -> None:
        for s, handler in saved.items():
            signal.signal(s, handler)

    def interrupted(signum: int, frame: Any) -> None:
        restore()
        raise _Interrupted(signum)

    try:
        for s in saved:
            signal.signal(s, interrupted)
        yield
    finally:
        restore()
