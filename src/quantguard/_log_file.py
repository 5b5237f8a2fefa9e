"""Opening and appending to a quantguard log file without writing anywhere else.

A log destination comes from an environment variable a canary operator types,
often in a process that runs as root, so the file sink is the one place where
quantguard could damage the host.  The rules, enforced at open time (not only
when the configuration is parsed, which would leave a window):

* a new file is created owner-only (``0o600``) with ``O_EXCL``;
* an existing file is appended to only if it is a regular file (not a
  directory, device, FIFO or socket) that is already a quantguard JSON-lines
  log (its first line is a quantguard event), or an empty file owned by this
  user (pre-created with ``touch``/``mktemp``); ``/etc/passwd`` is neither;
  ``/dev/null`` is the one device accepted (it discards);
* the last path component is never followed when it is a symlink
  (``O_NOFOLLOW``);
* each event is one ``os.write`` of a whole line to an ``O_APPEND``
  descriptor; when the disk fills mid-line, the partial bytes are cut off
  again so the file still ends at a line boundary.

Only the standard library is imported: the configuration parser uses
:func:`destination_problem` for an early, clear error.
"""

from __future__ import annotations

import errno
import json
import os
import stat

__all__ = ["LogFileError", "destination_problem", "open_log", "append_line"]

#: Bytes of an existing file read to recognise a quantguard log (its first line).
_HEAD_BYTES = 64 * 1024
_EVENT_PREFIX = "quantguard."
_FLAGS = os.O_APPEND | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


class LogFileError(OSError):
    """The destination is not a place quantguard may write its log; the message says why."""


def _is_quantguard_head(head: bytes) -> bool:
    line = head.split(b"\n", 1)[0]
    try:
        first = json.loads(line)
    except ValueError:
        return False
    return isinstance(first, dict) and str(first.get("event", "")).startswith(_EVENT_PREFIX)


def _is_devnull(st: os.stat_result) -> bool:
    """``/dev/null``: a device, but the usual way to discard a log."""
    try:
        null = os.stat(os.devnull)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and (st.st_dev, st.st_ino, st.st_rdev) == (null.st_dev, null.st_ino, null.st_rdev)


def _existing_problem(path: str, st: os.stat_result, head: bytes | None) -> str | None:
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link (quantguard does not follow links for its log)"
    if stat.S_ISDIR(st.st_mode):
        return "it is a directory"
    if not stat.S_ISREG(st.st_mode):
        return None if _is_devnull(st) else "it is not a regular file (a device, FIFO or socket)"
    if st.st_size == 0:
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            return "it is an empty file owned by another user"
        return None
    if head is not None and not _is_quantguard_head(head):
        return "it exists and is not a quantguard JSON-lines log (quantguard only creates or appends to its own logs)"
    return None


def destination_problem(path: str) -> str | None:
    """Why ``path`` cannot be quantguard's log, or ``None`` when it can (checked again at open)."""
    parent = os.path.dirname(os.path.abspath(path)) or "."
    name = os.path.basename(path)
    if not name:
        return "it names a directory, not a file"
    if not os.path.isdir(parent):
        return f"directory {parent!r} does not exist"
    try:
        name_max = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = 255
    if len(os.fsencode(name)) > name_max:
        return f"the file name is longer than {name_max} bytes"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"directory {parent!r} is not writable"
        return None
    except OSError as exc:
        return f"it cannot be inspected ({exc.strerror or exc})"
    head = None
    if stat.S_ISREG(st.st_mode) and st.st_size:
        try:
            with open(path, "rb") as existing:
                head = existing.read(_HEAD_BYTES)
        except OSError as exc:
            return f"it cannot be read to check that it is a quantguard log ({exc.strerror or exc})"
    return _existing_problem(path, st, head)


def open_log(path: str) -> int:
    """A write descriptor appending to ``path`` under the rules above; :class:`LogFileError` otherwise."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _FLAGS, 0o600)
    except FileExistsError:
        pass
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise LogFileError(exc.errno, f"{path}: {exc.strerror}") from None
    problem = _existing_problem(path, st, None)
    if problem is not None:
        raise LogFileError(errno.EPERM, f"{path}: {problem}")
    try:
        fd = os.open(path, os.O_RDWR | _FLAGS)
    except OSError as exc:
        raise LogFileError(exc.errno, f"{path}: {exc.strerror}") from None
    try:
        opened = os.fstat(fd)
        head = os.pread(fd, _HEAD_BYTES, 0) if opened.st_size else None
        problem = (
            "it changed while being opened"
            if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino)
            else _existing_problem(path, opened, head)
        )
    except OSError as exc:
        problem = f"it cannot be checked ({exc.strerror or exc})"
    if problem is not None:
        os.close(fd)
        raise LogFileError(errno.EPERM, f"{path}: {problem}")
    return fd


def append_line(fd: int, data: bytes) -> None:
    """Append ``data`` (one whole line) or nothing: a partial write is cut off again, then the error raised."""
    written = 0
    try:
        while written < len(data):
            count = os.write(fd, data[written:])
            if count <= 0:
                raise OSError(errno.EIO, "write returned 0")
            written += count
    except OSError:
        if written:
            _cut_partial(fd, data[:written])
        raise


def _cut_partial(fd: int, partial: bytes) -> None:
    """Remove our partial line from the end of the file, if the end is still exactly those bytes."""
    try:
        end = os.fstat(fd).st_size
        start = end - len(partial)
        if start >= 0 and os.pread(fd, len(partial), start) == partial:
            os.ftruncate(fd, start)
    except OSError:
        pass
