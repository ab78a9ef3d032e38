"""The file cache: tokens in a private directory, for the processes of one host.

Whoever can write in the directory could steer every token request: a FIFO at an entry's path
hangs the reader, a symbolic link to ``/dev/zero`` exhausts its memory, a symlinked lock file
makes it create files elsewhere, a lock held forever delays every token. So the directory must
be ours and writable by us alone (checked on every use, on the directory actually opened), and
every file in it is opened without following symbolic links, without blocking, accepted only
if it is a regular file of ours, and read up to :data:`MAX_ENTRY_BYTES`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from oauth_cc_auth._fork import reset_in_child
from oauth_cc_auth._token_cache import TokenCache, checked_lock_timeout
from oauth_cc_auth.errors import ConfigurationError

__all__ = ["MAX_ENTRY_BYTES", "FileCache", "default_directory"]

logger = logging.getLogger("oauth_cc_auth")

#: The largest entry read or written: a sealed token is a few KiB at most.
MAX_ENTRY_BYTES = 64 * 1024

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOCTTY = getattr(os, "O_NOCTTY", 0)
#: What ``open(O_NOFOLLOW)`` fails with on a symbolic link (Linux, macOS: ELOOP; BSD: EMLINK).
_SYMLINK_ERRORS = (errno.ELOOP, errno.EMLINK)

#: The handle of a lock that needs no file: the cache is memory-only (see ``memory_only``).
_NO_LOCK = -1

#: Default directories and entries already warned about in this process (one warning each).
_warned: set[str] = set()
_warned_lock = threading.Lock()


def default_directory() -> Path:
    """``$XDG_CACHE_HOME/oauth-cc-auth``, by default ``~/.cache/oauth-cc-auth``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "oauth-cc-auth"


def _problem(info: os.stat_result) -> str | None:
    """What makes a directory unfit for tokens, or ``None``."""
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if info.st_uid != os.geteuid():
        return f"is owned by another user (uid {info.st_uid}); use a directory of your own"
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (f"is writable by other users (mode {mode:04o}), who could tamper with the "
                "cache; make it private: chmod 700")
    return None


class UnsafeDirectoryError(ConfigurationError):
    """The cache directory is not ours alone."""


def _open_directory(directory: Path) -> int:
    """A descriptor of *directory*, checked to be ours and writable by us only.

    The checks are made on the directory opened (``fstat``), not on the path: a directory
    swapped after the check is never the one used. A symbolic link is followed only if it is
    ours too.
    """
    link = os.lstat(directory)
    if stat.S_ISLNK(link.st_mode) and link.st_uid != os.geteuid():
        raise UnsafeDirectoryError(
            f"the token cache directory {str(directory)!r} is a symbolic link owned by another "
            f"user (uid {link.st_uid}); use a directory of your own"
        )
    fd = os.open(directory, os.O_RDONLY | _DIRECTORY)
    try:
        problem = _problem(os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    if problem is not None:
        os.close(fd)
        raise UnsafeDirectoryError(f"the token cache directory {str(directory)!r} {problem}")
    return fd


def _read_entry(fd: int, path: Path) -> bytes | None:
    """The bytes of an opened entry, or ``None`` if it is no entry of ours (then logged)."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        what = "not a regular file"
    elif info.st_uid != os.geteuid():
        what = f"owned by another user (uid {info.st_uid})"
    elif info.st_size > MAX_ENTRY_BYTES:
        what = f"larger than {MAX_ENTRY_BYTES} bytes"
    else:
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_ENTRY_BYTES:  # bounded even if the file grows meanwhile
            chunk = os.read(fd, MAX_ENTRY_BYTES + 1 - size)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
        what = f"larger than {MAX_ENTRY_BYTES} bytes"
    _ignoring(path, what)
    return None


def _ignoring(path: Path, what: str) -> None:
    """Log an entry ignored: a warning the first time for its path, then at debug level (a
    process waiting for a lock looks at the entry many times a second)."""
    with _warned_lock:
        first = str(path) not in _warned
        _warned.add(str(path))
    logger.log(logging.WARNING if first else logging.DEBUG,
               "ignoring token cache entry %s: %s", path, what)


class FileCache(TokenCache):
    """Tokens in files of one directory, for the processes of one host (CLI, cron, HTTPie).

    The directory (by default ``~/.cache/oauth-cc-auth``, or under ``$XDG_CACHE_HOME``) is
    created ``0700``; one that exists must be owned by the user and writable by no one else.
    Files are created ``0600``, replaced atomically, and locked with ``flock``, which the
    operating system releases when a holder dies. Entries that are not regular files of the
    user's, or larger than 64 KiB, are ignored (and replaced by the next token stored).

    Raises:
        ConfigurationError: the directory cannot be created, or is unsafe. For the default
            directory, a warning is logged instead and the cache is memory-only
            (:attr:`memory_only`): nothing is shared, nothing fails.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *,
                 lock_timeout: float = 30.0) -> None:
        try:
            import fcntl  # noqa: F401 - POSIX only
        except ImportError:  # pragma: no cover - Windows
            raise ConfigurationError("the file cache needs a POSIX system (fcntl)") from None
        default = directory is None
        self.directory = default_directory() if directory is None else Path(directory)
        self.lock_timeout = checked_lock_timeout(lock_timeout)
        #: ``True`` when the default directory was unsafe: nothing is stored or read.
        self.memory_only = False
        #: Lock files this process holds (descriptors), closed in a forked child.
        self._held: set[int] = set()
        try:
            self._prepare()
        except ConfigurationError as exc:
            if not default:
                raise
            self.memory_only = True
            with _warned_lock:
                first = str(self.directory) not in _warned
                _warned.add(str(self.directory))
            if first:
                logger.warning("%s; using the in-process cache only", exc)
        reset_in_child(self)

    def _prepare(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(_open_directory(self.directory))
        except ConfigurationError:
            raise
        except OSError as exc:
            raise ConfigurationError(
                f"cannot use the token cache directory {str(self.directory)!r}: "
                f"{exc.strerror or exc}"
            ) from None

    @property
    def name(self) -> str:
        return f"file://{self.directory}"

    @staticmethod
    def _file(key: str, suffix: str) -> str:
        if not key.isalnum():
            raise ValueError("cache keys are digests")
        return f"{key}.{suffix}"

    @contextlib.contextmanager
    def _opened_directory(self) -> Iterator[int]:
        fd = _open_directory(self.directory)
        try:
            yield fd
        finally:
            os.close(fd)

    def load(self, key: str) -> bytes | None:
        if self.memory_only:
            return None
        name = self._file(key, "token")
        with self._opened_directory() as directory:
            try:
                # O_NONBLOCK: opening a FIFO returns at once (and reading it finds no data).
                fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _NOCTTY,
                             dir_fd=directory)
            except FileNotFoundError:
                return None
            except OSError as exc:
                if exc.errno not in _SYMLINK_ERRORS:
                    raise
                _ignoring(self.directory / name, "a symbolic link")
                return None
            try:
                return _read_entry(fd, self.directory / name)
            finally:
                os.close(fd)

    def store(self, key: str, value: bytes, ttl: float | None) -> None:
        if self.memory_only:
            return
        if len(value) > MAX_ENTRY_BYTES:
            raise ValueError(f"an entry of {len(value)} bytes is over the file cache's limit "
                             f"of {MAX_ENTRY_BYTES}")
        name = self._file(key, "token")
        temporary = f".tmp-{secrets.token_hex(8)}"
        with self._opened_directory() as directory:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600,
                         dir_fd=directory)
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(value)
                    file.flush()
                    os.fsync(file.fileno())
                # Atomic: a reader sees the old entry or the new one, whole. A symbolic link or
                # a FIFO at the entry's path is replaced, not followed.
                os.rename(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary, dir_fd=directory)
                raise

    def try_lock(self, key: str, timeout: float) -> object | None:
        import fcntl

        if self.memory_only:
            return _NO_LOCK
        name = self._file(key, "lock")
        with self._opened_directory() as directory:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _NOCTTY, 0o600,
                         dir_fd=directory)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                raise OSError(errno.EPERM, f"lock file {self.directory / name} is not a "
                                           "regular file of ours")
            # Never blocks: the core polls, and stops waiting after lock_timeout.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        self._held.add(fd)
        return fd

    def unlock(self, key: str, handle: object) -> None:
        import fcntl

        if handle == _NO_LOCK and self.memory_only:
            return
        if not isinstance(handle, int) or handle not in self._held:
            raise TypeError(f"not a lock handle of this cache: {handle!r}")
        self._held.discard(handle)
        try:
            fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            os.close(handle)

    def reset_after_fork(self) -> None:
        # The child's copies of the parent's lock descriptors: closing them releases nothing
        # (the parent still holds its locks), and a parent that dies frees them at once, not
        # when this child exits.
        held, self._held = self._held, set()
        for fd in held:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __repr__(self) -> str:
        return f"FileCache({str(self.directory)!r})"

