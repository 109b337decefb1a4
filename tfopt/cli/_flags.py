"""Flags that several tools define under the same name (--model, --model_name).

absl keeps one flag registry per process and refuses a second definition of a
name, and the tests import every tool into one process. Each tool reads such a
flag by name, so the tools share one definition: whichever tool is imported
first defines it, the others register it as their own, so it still shows in
their --help.
"""

import sys

from absl import flags


def shared_string(name, help_text, module_name):
    """A string flag `name` (default None) owned by `module_name` and shared with other tools.

    Args:
      name: the flag's name, without dashes.
      help_text: its help, used by the tool that defines it first.
      module_name: the defining tool's module (``__name__``).

    Returns:
      The flag's `FlagHolder`.
    """
    if module_name == "__main__":  # absl's name for the main module (python -m ...)
        module_name = sys.argv[0]
    if name in flags.FLAGS:
        flag = flags.FLAGS[name]
        flags.FLAGS.register_flag_by_module(module_name, flag)
        return flags.FlagHolder(flags.FLAGS, flag)
    return flags.DEFINE_string(name, None, help_text, module_name=module_name)
