"""Atomic writes: a file or directory appears complete at its path, or not at all.

TF Serving polls its base path and LiteRT users copy whatever file they find, so
tfopt never writes in place: it writes beside the target and renames.
"""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path that is renamed to `path` only if the block succeeds.

    The temporary path sits in a private staging directory inside `path`'s own
    directory (so the rename stays on one file system and is atomic) and ends in
    the same file name, so writers that check extensions (``model.save``) accept
    it. Write a file or a directory there. On success it replaces `path` (a file,
    or an empty directory); on any error the staging directory is removed and
    `path` is untouched. Missing parent directories are created.

    Args:
      path: where the file or directory should end up.

    Yields:
      The temporary path to write to. Nothing exists there yet.

    Example:
      >>> with atomic_path("models/model.keras") as temporary:
      ...     model.save(temporary)
    """
    target = os.path.abspath(path)
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    # The dot keeps TF Serving (which loads integer-named directories) and most
    # file listings away from the half-written result.
    staging = tempfile.mkdtemp(prefix=".tfopt-", dir=directory)
    try:
        temporary = os.path.join(staging, os.path.basename(target))
        yield temporary
        if not os.path.lexists(temporary):
            raise FileNotFoundError(f"Nothing was written to the temporary path {temporary!r}, "
                                    f"so there is nothing to move to {path!r}.")
        os.replace(temporary, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
