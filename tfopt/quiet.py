"""Keeps TensorFlow's log noise out of tfopt's command-line tools and examples.

TensorFlow writes C++ log lines to stderr that say nothing to a tfopt user: the
oneDNN and "Could not find cuda drivers" notices while it is imported, a
"failed call to cuInit: ... CUDA error" on machines without a GPU, and the TFLite
converter's MLIR chatter. `silence_tensorflow()` hides them. It has to run
before TensorFlow is imported; ``import tfopt`` does not import TensorFlow, so
this module can.

Only tools and examples call it; the tfopt library never changes a user's
logging. To see TensorFlow's logs again, set ``TFOPT_VERBOSE=1``, or set
``TF_CPP_MIN_LOG_LEVEL`` yourself (0 shows everything), which is honoured as
given, also for the start-up lines TensorFlow itself prints before reading it.

Example:
  from tfopt import quiet
  quiet.silence_tensorflow()  # first: it imports TensorFlow

  import tf_keras as keras
  from tfopt import pruning
"""

import contextlib
import importlib
import os
import re
import sys
import tempfile

VERBOSE_VARIABLE = "TFOPT_VERBOSE"
LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"

# TF_CPP_MIN_LOG_LEVEL 3 keeps only FATAL lines. Errors that matter reach the
# user as Python exceptions; the C++ ERROR lines are mostly the cuInit one.
_QUIET_LEVEL = 3

# absl's C++ log line: severity, MMDD, time, thread, file:line. Before absl is
# initialised the time reads "00:00:<seconds since 1970>", as in
# "I0000 00:00:1795496675.983626    3866 port.cc:153] oneDNN custom operations are on."
_LOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+ +\d+ [^ \]]+:\d+\] ")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def verbose():
    """Whether the user asked for TensorFlow's logs (``TFOPT_VERBOSE`` set to 1, true or yes)."""
    return os.environ.get(VERBOSE_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def silence_tensorflow():
    """Hides TensorFlow's C++ log lines for this process; call it before importing tfopt.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` unless the user set it, then imports tfopt
    (and with it TensorFlow) while stderr is filtered: TensorFlow prints its
    start-up notices during that import, before it reads the variable, so they
    are dropped here at the same level. Lines of other kinds written meanwhile
    (Python warnings, errors) are passed through. Does nothing when
    ``TFOPT_VERBOSE`` is set, and cannot hide the start-up notices once
    TensorFlow has been imported.

    Example:
      >>> from tfopt import quiet
      >>> quiet.silence_tensorflow()
      >>> from tfopt import pruning
    """
    if verbose():
        return
    os.environ.setdefault(LEVEL_VARIABLE, str(_QUIET_LEVEL))
    min_level = _min_level()
    if "tensorflow" in sys.modules or min_level <= 0:
        return
    with _stderr_without_logs_below(min_level):
        for module in ("tensorflow", "tf_keras", "tfopt._keras2"):
            importlib.import_module(module)


def _min_level():
    try:
        return int(os.environ[LEVEL_VARIABLE])
    except ValueError:
        return 0  # TensorFlow ignores a value it cannot read; so do we.


def _is_noise(line, min_level):
    """Whether `line` is a C++ log line TensorFlow should not have printed at `min_level`."""
    if line.rstrip("\n") == _PREAMBLE:
        return True
    match = _LOG_LINE.match(line)
    return bool(match) and _SEVERITY[match.group(1)] < min_level


@contextlib.contextmanager
def _stderr_without_logs_below(min_level):
    """Sends file descriptor 2 to a file for the block, then replays what is not noise.

    TensorFlow's C++ code writes to the descriptor directly, so replacing
    `sys.stderr` would not catch it. A file rather than a pipe: nobody reads a
    pipe during the import, and a full one would block it.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True)
                    if not _is_noise(line, min_level)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
