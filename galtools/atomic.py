"""One atomic writer: every output is written beside itself and renamed into place when complete.

A temporary is named ``.NAME.tmp-HOST-PID-RANDOM[SUFFIX]`` in the output's directory, created
with the mode the umask gives (files 0o666 & ~umask, folders 0o777 & ~umask), synced to disk
(the policy is :data:`FSYNC`, applied by :func:`_sync_file` / :func:`_sync_dir`), renamed on
success and removed on any failure, KeyboardInterrupt included.  When a writer starts an
output it removes that output's temporaries left by processes of this host that no longer
exist (and says so).  A full disk becomes one :class:`~galtools.errors.GalError` line naming
the output and the space left.

``atomic_path`` (a context manager yielding the temporary path) is the primitive; the rest
(:func:`atomic_open`, :func:`atomic_dir`, :func:`write_json`, :func:`write_text`,
:func:`save_figure`, :class:`AtomicPath` for writers that commit later) are built on it.
The path ``-`` means stdout: the temporary lives in the temporary folder and is copied out.
"""

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile

from galtools.errors import GalError

FSYNC = True  # fsync each output before its rename and its folder after (False: leave it to the OS)
_NAME_MAX = 255
_RANDOM_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


# ----------------------------------------------------------------------------------- naming


def _host():
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname() or "localhost")


def _prefix(name):
    """``.NAME.tmp-``; a name too long for one more part is shortened, deterministically."""
    if len(name.encode()) > _NAME_MAX - 80:
        import hashlib

        digest = hashlib.sha1(name.encode()).hexdigest()[:12]
        name = name.encode()[:100].decode(errors="ignore") + "~" + digest
    return f".{name}.tmp-"


def temporary_name(name, suffix=""):
    """A fresh temporary name for output ``name``: ``.NAME.tmp-HOST-PID-RANDOM[SUFFIX]``."""
    rand = "".join(secrets.choice(_RANDOM_CHARS) for _ in range(8))
    if suffix and not suffix.startswith("."):
        suffix = "." + suffix
    return f"{_prefix(name)}{_host()}-{os.getpid()}-{rand}{suffix or ''}"


def _parse(name, entry):
    """(host, pid) when ``entry`` is a temporary of output ``name``, else None."""
    prefix = _prefix(name)
    if not entry.startswith(prefix):
        return None
    m = re.fullmatch(r"(.+)-(\d+)-[a-z0-9]{8}(\..*)?", entry[len(prefix) :], re.S)
    return (m.group(1), int(m.group(2))) if m else None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, it is someone else's
        return True
    return True


def remove_stale(path):
    """Remove temporaries of ``path`` whose writer (a process of this host) is gone.

    Each removal is said on stderr; a live process's temporary, or another host's, is left.
    Returns the removed paths.
    """
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    host, removed = _host(), []
    for entry in entries:
        owner = _parse(name, entry)
        if owner is None or owner[0] != host or owner[1] == os.getpid() or _alive(owner[1]):
            continue
        stale = os.path.join(directory, entry)
        try:
            if os.path.isdir(stale) and not os.path.islink(stale):
                shutil.rmtree(stale)
            else:
                os.unlink(stale)
        except FileNotFoundError:
            continue  # another writer removed it first
        except OSError as exc:
            _say(f"{stale}: cannot remove stale temporary ({exc.strerror or exc})")
            continue
        removed.append(stale)
        _say(f"{stale}: removed a stale temporary of {name} left by process {owner[1]} (gone)")
    return removed


def _say(message):
    from galtools.progress import say

    say(message)


# ------------------------------------------------------------------------------ mode, sync


def umask():
    """The process umask (read without changing it where the system allows)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode():
    return 0o666 & ~umask()


def dir_mode():
    return 0o777 & ~umask()


def _sync_file(path):
    if not FSYNC:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir(path):
    if not FSYNC:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder
    finally:
        os.close(fd)


def _sync_tree(path):
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if os.path.isfile(p) and not os.path.islink(p):
                _sync_file(p)
        _sync_dir(root)


# ----------------------------------------------------------------------------- full disk


def is_disk_full(exc):
    """Whether ``exc`` (or an exception it came from) is 'no space left on device'."""
    if isinstance(exc, GalError):
        return False  # already said (or not a disk problem)
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc)
        if "errno = 28" in text or "No space left on device" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _size(n):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0


def disk_full_error(path):
    """The one-line GalError for a full disk while writing ``path``."""
    directory = os.path.dirname(os.path.abspath(path)) if path != "-" else tempfile.gettempdir()
    try:
        free = f"{_size(shutil.disk_usage(directory).free)} free"
    except OSError:
        free = "free space unknown"
    return GalError(f"{path}: no space left on device while writing ({free} on {directory})")


# ---------------------------------------------------------------------------------- checks


def check_output(path, overwrite=False, inputs=()):
    """Refuse to clobber an existing output (without overwrite) or to write over an input."""
    path = os.fspath(path)
    if path == "-":
        return
    real = os.path.realpath(path)
    for src in inputs:
        src = os.fspath(src)
        if src != "-" and os.path.exists(src) and os.path.realpath(src) == real:
            raise GalError(f"{path}: output is also an input (inputs are never modified)")
    if os.path.exists(path) and not overwrite:
        raise GalError(f"{path}: output exists (use --overwrite to replace it)")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise GalError(f"{path}: directory {parent} does not exist")


# ------------------------------------------------------------------------------ the writer


class AtomicPath:
    """A temporary path (``.tmp``) beside ``path`` that becomes ``path`` on :meth:`commit`.

    ``directory=True`` makes a temporary folder instead of an (empty) file.  Use as a context
    manager, or call :meth:`commit` / :meth:`abort` (or :meth:`fail` with the exception) yourself.
    """

    def __init__(self, path, overwrite=False, inputs=(), suffix=None, directory=False):
        self.path = os.fspath(path)
        self.overwrite = overwrite
        self.directory = directory
        self.done = False
        check_output(self.path, overwrite, inputs)
        if self.path == "-":
            if directory:
                raise GalError("-: a folder output cannot go to stdout")
            parent, name = tempfile.gettempdir(), "galprep-stdout"
            remove_stale(os.path.join(parent, name))
        else:
            parent, name = os.path.split(os.path.abspath(self.path))
            remove_stale(self.path)
        for _ in range(100):
            tmp = os.path.join(parent, temporary_name(name, suffix))
            try:
                if directory:
                    os.mkdir(tmp, 0o777)
                else:
                    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                continue
            except OSError as exc:
                if is_disk_full(exc):
                    raise disk_full_error(self.path) from exc
                raise GalError(f"{self.path}: cannot write here ({exc.strerror or exc})") from exc
            break
        else:  # pragma: no cover
            raise GalError(f"{self.path}: no free temporary name")
        self.tmp = tmp

    def commit(self):
        """Move the finished temporary into place (or copy it to stdout)."""
        if self.done:
            return
        try:
            self._commit()
        except BaseException as exc:
            self.abort()
            if is_disk_full(exc):
                raise disk_full_error(self.path) from exc
            raise
        self.done = True

    def _commit(self):
        if self.path == "-":
            with open(self.tmp, "rb") as fh:
                shutil.copyfileobj(fh, sys.stdout.buffer, 2**20)
            sys.stdout.buffer.flush()
            os.unlink(self.tmp)
            return
        if os.path.lexists(self.path) and not self.overwrite:
            raise GalError(f"{self.path}: output appeared while writing; not replaced")
        if self.directory:
            os.chmod(self.tmp, dir_mode())
            _sync_tree(self.tmp)
            self._replace_dir()
        else:
            if not os.path.exists(self.tmp):
                raise GalError(f"{self.path}: the writer removed its temporary {self.tmp}")
            os.chmod(self.tmp, file_mode())  # some writers recreate the file (mode 0600)
            _sync_file(self.tmp)
            os.replace(self.tmp, self.path)
        _sync_dir(os.path.dirname(os.path.abspath(self.path)))

    def _replace_dir(self):
        old = None
        if os.path.isdir(self.path) and not os.path.islink(self.path):
            parent, name = os.path.split(os.path.abspath(self.path))
            old = os.path.join(parent, temporary_name(name, ".old"))
            os.rename(self.path, old)
        elif os.path.lexists(self.path):
            os.unlink(self.path)
        try:
            os.replace(self.tmp, self.path)
        except BaseException:
            if old is not None:
                os.rename(old, self.path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self):
        """Remove the temporary (whatever it holds)."""
        self.done = True
        tmp = getattr(self, "tmp", None)
        if tmp is None:
            return
        try:
            if os.path.isdir(tmp) and not os.path.islink(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.unlink(tmp)
        except OSError:
            pass

    def fail(self, exc):
        """Abort; return the exception to raise (a disk-full GalError, or None to re-raise)."""
        self.abort()
        return disk_full_error(self.path) if is_disk_full(exc) else None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
            return False
        error = self.fail(exc)
        if error is not None:
            raise error from exc
        return False


@contextlib.contextmanager
def atomic_path(path, overwrite=False, inputs=(), suffix=None):
    """Yield a temporary path to write; it becomes ``path`` when the block ends normally.

    ``suffix`` ends the temporary's name (writers that choose the format by extension, or
    append one, need it); by default it is the output's own extension.
    """
    if suffix is None and path != "-":
        suffix = os.path.splitext(os.fspath(path))[1]
    with AtomicPath(path, overwrite, inputs, suffix) as target:
        yield target.tmp


@contextlib.contextmanager
def atomic_dir(path, overwrite=False, inputs=()):
    """Yield a temporary folder that replaces ``path`` (file or folder) when the block ends."""
    with AtomicPath(path, overwrite, inputs, directory=True) as target:
        yield target.tmp


@contextlib.contextmanager
def atomic_open(path, mode="w", overwrite=False, inputs=(), **open_kwargs):
    """``open`` the temporary of ``path``; closed and renamed into place when the block ends."""
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_open writes a new file; mode {mode!r} does not")
    with atomic_path(path, overwrite, inputs) as tmp:
        with open(tmp, mode.replace("x", "w"), **open_kwargs) as fh:
            yield fh


def write_text(path, text, overwrite=True, inputs=(), encoding="utf-8"):
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w", overwrite, inputs, encoding=encoding) as fh:
        fh.write(text)


def write_json(path, data, **json_dump_kwargs):
    """JSON to ``path`` (replacing it) atomically; defaults: indent=1, sorted keys, floats."""
    json_dump_kwargs.setdefault("indent", 1)
    json_dump_kwargs.setdefault("sort_keys", True)
    json_dump_kwargs.setdefault("default", float)
    with atomic_open(path, "w", overwrite=True) as fh:
        json.dump(data, fh, **json_dump_kwargs)


def save_figure(fig, path, **savefig_kwargs):
    """``fig.savefig`` to ``path`` (replacing it) atomically; the format is the extension's."""
    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    savefig_kwargs.setdefault("format", ext or "png")
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, **savefig_kwargs)
