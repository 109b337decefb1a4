"""How tfopt's command-line tools start, show their help and fail.

absl runs the tools; this adds three things on top of `absl.app.run`:

- `--help` lists the tool's own flags also when a console script starts it.
  absl lists the flags of the main module only, and the console-script
  wrapper, not the tool's module, is then the main module.
- A usage error (a bad or unknown flag, a file or data set that does not fit)
  exits with status 2 and one line on stderr, instead of absl's usage text and
  status 1.
- Any other failure exits with status 1 and one line; ``TFOPT_VERBOSE=1`` adds
  the traceback.
"""

import contextlib
import functools
import sys
import traceback

from absl import app
from absl import flags
from absl import logging

from tfopt import quiet
from tfopt.cli import _flags

USAGE_ERROR = 2
FAILURE = 1
INTERRUPTED = 130  # the shell's status for a process stopped by Ctrl-C (128 + SIGINT)

UsageError = app.UsageError


class Failure(Exception):
    """A run that started well and then failed for a known reason (exit status 1, one line)."""


def run(main, tool, module, argv=None):
    """Runs `main(argv)` as the command-line tool `tool`, then exits.

    Args:
      main: the tool's main function; raises `UsageError` for bad input.
      tool: the tool's name as users type it, e.g. "tfopt-prune".
      module: the module that defines the tool's flags and whose docstring is
        its help text.
      argv: the command line, program name first. Defaults to None (sys.argv).
    """
    _flags.use_tool(module.__name__)  # this tool's defaults and checks on shared flags
    _adopt_flags_and_doc(module)
    app.run(functools.partial(_guarded_main, main, tool), argv=argv,
            flags_parser=functools.partial(_parse_flags, tool))


def _adopt_flags_and_doc(module):
    """Makes `module`'s flags and docstring those of the main module, as absl's help sees it."""
    main_name = sys.argv[0]  # absl's name for the __main__ module
    if module.__name__ != "__main__":  # under `python -m` they are the main module's already
        for flag in flags.FLAGS.get_flags_for_module(module.__name__):
            flags.FLAGS.register_key_flag_for_module(main_name, flag)
    main_module = sys.modules["__main__"]
    if not main_module.__doc__:  # absl's usage text is __main__'s docstring
        main_module.__doc__ = module.__doc__


def _parse_flags(tool, argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        _exit(tool, f"{str(error).rstrip('.')}. See {tool} --help.", USAGE_ERROR)


def _guarded_main(main, tool, argv):
    try:
        return main(argv)
    except UsageError as error:
        _exit(tool, str(error), USAGE_ERROR)
    except Failure as error:
        _exit(tool, str(error), FAILURE)
    except KeyboardInterrupt:
        _exit(tool, "interrupted.", INTERRUPTED)
    except Exception as error:  # pylint: disable=broad-except  (one line, not a traceback)
        if quiet.verbose():
            traceback.print_exc()
            hint = ""
        else:
            hint = f" (set {quiet.VERBOSE_VARIABLE}=1 to see the traceback)"
        _exit(tool, f"{type(error).__name__}: {_first_line(error)}{hint}", FAILURE)


def _first_line(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else "(no message)"


def _exit(tool, message, status):
    """Writes `message` as one line on stderr and exits with `status`."""
    sys.stdout.flush()
    sys.stderr.write(f"{tool}: error: {' '.join(message.split())}\n")
    sys.stderr.flush()
    sys.exit(status)


@contextlib.contextmanager
def absl_at_warning():
    """absl logs at WARNING inside the block, when the tool's own output says what was done.

    Left as it is with ``--verbosity`` on the command line or TFOPT_VERBOSE=1.
    """
    verbosity = logging.get_verbosity()
    if not (flags.FLAGS["verbosity"].present or quiet.verbose()):
        logging.set_verbosity(logging.WARNING)
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
