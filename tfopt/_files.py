"""Atomic writes: a file or directory appears complete at its path, or not at all.

TF Serving polls its base path and LiteRT users copy whatever file they find, so
tfopt never writes in place: it writes into a staging directory beside the
target and renames. Everything an export writes on the way (the TFLite
converter's temporary SavedModel included, see `temporary_files_in`) lives in
that one staging directory, named ``.tfopt-<process id>-<random>``. It is
removed when the write ends, whether it succeeds or fails, and at interpreter
exit; a process killed outright (SIGKILL, power loss) cannot remove it, so the
next write into the same directory removes the staging directories of
processes that no longer run.
"""

import atexit
import contextlib
import ctypes
import errno
import os
import re
import shutil
import tempfile

_STAGING_PREFIX = ".tfopt-"
_STAGING_NAME = re.compile(re.escape(_STAGING_PREFIX) + r"(\d+)-\w+$")

# Staging directories of this process that are still in use, for the exit hook.
_open_staging = set()


@contextlib.contextmanager
def atomic_path(path, replace=True):
    """Yields a temporary path that is renamed to `path` only if the block succeeds.

    The temporary path sits in a private staging directory inside `path`'s own
    directory (so the rename stays on one file system and is atomic) and ends in
    the same file name, so writers that check extensions (``model.save``) accept
    it. Write a file or a directory there. On success it replaces `path` (a file
    or a directory; a non-empty directory is swapped with the new one in one
    step where the system can, see `_move_into_place`); on any error the
    staging directory is removed and `path` is untouched. Missing parent directories are created. Enter the block
    when there is something to write: the staging directory is created on entry.

    Args:
      path: where the file or directory should end up.
      replace: whether to replace what is at `path`. With False, something
        appearing there meanwhile (another process's export) makes the
        block raise FileExistsError and stays as it is. Defaults to True.

    Yields:
      The temporary path to write to. Nothing exists there yet.

    Example:
      >>> with atomic_path("models/model.keras") as temporary:
      ...     model.save(temporary)
    """
    target = os.path.abspath(path)
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    remove_abandoned_staging(directory)
    # The dot keeps TF Serving (which loads integer-named directories) and most
    # file listings away from the half-written result.
    staging = tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{os.getpid()}-", dir=directory)
    _open_staging.add(staging)
    try:
        temporary = os.path.join(staging, os.path.basename(target))
        yield temporary
        if not os.path.lexists(temporary):
            raise FileNotFoundError(f"Nothing was written to the temporary path {temporary!r}, "
                                    f"so there is nothing to move to {path!r}.")
        if replace:
            _move_into_place(temporary, target, staging)
        else:
            _move_unless_taken(temporary, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _open_staging.discard(staging)


def write_text(path, text):
    """Writes `text` to the file `path` whole or not at all (`atomic_path`)."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as stream:
            stream.write(text)


def _move_into_place(temporary, target, staging):
    """Renames `temporary` to `target`, replacing what is there.

    `os.replace` cannot replace a non-empty directory (a SavedModel version
    written again with overwrite=True). Linux swaps the two in one step
    (renameat2 with RENAME_EXCHANGE), so `target` always holds a complete
    old or new version and the old one ends up in the staging directory,
    removed with it. Where the system cannot swap, the old directory moves
    into the staging directory first: for the moment between the two renames
    nothing is at `target`.
    """
    if (os.path.isdir(target) and not os.path.islink(target) and os.listdir(target)
            and os.path.isdir(temporary)):
        if _exchange(temporary, target):
            return
        os.rename(target, os.path.join(staging, "replaced"))
    os.replace(temporary, target)


def _move_unless_taken(temporary, target):
    """Renames `temporary` to `target`; FileExistsError if `target` exists, checked atomically."""
    if _renameat2(temporary, target, flags=1):  # RENAME_NOREPLACE
        return
    if os.path.lexists(target):  # no atomic check here: a small window stays
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), target)
    os.rename(temporary, target)


def _exchange(first, second):
    """Swaps two paths atomically (Linux renameat2); False where the system cannot."""
    return _renameat2(first, second, flags=2)  # RENAME_EXCHANGE


def _renameat2(source, destination, flags):
    """Linux renameat2: True if done, False where the system cannot; other errors raise."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not Linux, or a C library without renameat2
        return False
    at_current_directory = -100  # AT_FDCWD: relative paths from the working directory
    if renameat2(at_current_directory, os.fsencode(source), at_current_directory,
                 os.fsencode(destination), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # kernel or file system says no
        return False
    if code == errno.EEXIST:
        raise FileExistsError(code, os.strerror(code), destination)
    raise OSError(code, os.strerror(code), destination)


@contextlib.contextmanager
def temporary_files_in(directory):
    """Points Python's `tempfile` at `directory` for the block.

    The TFLite converter saves the Keras model as a SavedModel in
    ``tempfile.mkdtemp()`` before converting it, and removes it only if it
    gets the chance. Inside a staging directory, that SavedModel goes away with
    the staging directory. `tempfile.tempdir` is process-wide: temporary files
    other threads create meanwhile land there too (and are removed with it).
    """
    previous = tempfile.tempdir
    tempfile.tempdir = directory
    try:
        yield
    finally:
        tempfile.tempdir = previous


def remove_abandoned_staging(directory):
    """Removes staging directories in `directory` whose process no longer runs."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = _STAGING_NAME.match(name)
        if match and not _running(int(match.group(1))):
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def _running(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return True  # cannot tell: keep its files
    return True


@atexit.register
def _remove_open_staging():
    for staging in list(_open_staging):
        shutil.rmtree(staging, ignore_errors=True)
