"""Flags that several tools define under the same name (--model, --data, --sparsity, ...).

absl keeps one flag registry per process and refuses a second definition of a
name, and the tests import every tool into one process. So a name several
tools use is defined once, by whichever tool is imported first, and the others
register that flag as their own, so it still shows in their --help. The flag
must be of the same kind everywhere (a float stays a float), but each tool
keeps its own default, help text and checks: `use_tool`, which `_app.run`
calls as a tool starts (before its command line is parsed), puts that tool's
default and help on each shared flag it uses and turns on its checks only.

Example:
  _SPARSITY = _flags.shared_float("sparsity", 0.8, "Final sparsity, in [0, 1).", __name__,
                                  check=(lambda value: 0 <= value < 1, "must be in [0, 1)"))
"""

import sys

from absl import flags

# name -> {"kind": (define function name, details), "tools": {module: (default, help)}}
_SHARED = {}
# The module of the tool whose defaults and checks are in force (`use_tool`).
_ACTIVE = [None]


def _module(module_name):
    """absl's name for `module_name`: the script path when the tool runs as ``python -m``."""
    return sys.argv[0] if module_name == "__main__" else module_name


def _shared(define, kind, name, default, help_text, module_name, check=None, shown=None):
    """Defines flag `name` once (or adopts the existing one) for the tool `module_name`.

    `shown` is the help as absl shows it once defined, when that differs from
    `help_text` (an enum's help starts with its values).
    """
    module_name = _module(module_name)
    entry = _SHARED.get(name)
    if entry is None:
        if name in flags.FLAGS:
            raise ValueError(f"flag --{name} is already defined outside tfopt.cli._flags; define "
                             "it with a shared_* helper in every tool that uses it.")
        define(name, default, help_text, module_name=module_name)
        entry = _SHARED[name] = {"kind": kind, "tools": {}}
    elif entry["kind"] != kind:
        raise ValueError(f"flag --{name} is shared as {entry['kind']}; {module_name} asks for "
                         f"{kind}. Tools sharing a flag must agree on its kind.")
    else:
        flags.FLAGS.register_flag_by_module(module_name, flags.FLAGS[name])
    entry["tools"][module_name] = (default, shown or help_text)
    if check is not None:
        test, message = check
        flags.register_validator(
            name, lambda value: _ACTIVE[0] != module_name or value is None or test(value),
            message)
    return flags.FlagHolder(flags.FLAGS, flags.FLAGS[name])


def use_tool(module_name):
    """Puts the tool `module_name`'s defaults, help texts and checks on the shared flags.

    Call it before the tool's command line is parsed (values given on it stay).
    """
    module_name = _module(module_name)
    _ACTIVE[0] = module_name
    for name, entry in _SHARED.items():
        if module_name in entry["tools"]:
            default, help_text = entry["tools"][module_name]
            flag = flags.FLAGS[name]
            flag.help = help_text
            try:
                flags.FLAGS.set_default(name, default)
            except flags.IllegalFlagValueError:
                pass  # a value another tool was given, checked when this command line is parsed


def shared_string(name, help_text, module_name, default=None, check=None):
    """A string flag `name` shared with other tools (see the module docstring).

    Args:
      name: the flag's name, without dashes.
      help_text: its help in this tool.
      module_name: the tool's module (``__name__``).
      default: its default in this tool. Defaults to None (not given).
      check: optional ``(test, message)``: `test(value)` must hold for a given
        value while this tool runs, else absl reports "flag --name=value: message".

    Returns:
      The flag's `FlagHolder`.
    """
    return _shared(flags.DEFINE_string, ("string",), name, default, help_text, module_name,
                   check)


def shared_float(name, default, help_text, module_name, check=None):
    """A float flag `name` shared with other tools; arguments as `shared_string`'s."""
    return _shared(flags.DEFINE_float, ("float",), name, default, help_text, module_name,
                   check)


def shared_integer(name, default, help_text, module_name, check=None):
    """An integer flag `name` shared with other tools; arguments as `shared_string`'s."""
    return _shared(flags.DEFINE_integer, ("integer",), name, default, help_text, module_name,
                   check)


def shared_boolean(name, default, help_text, module_name):
    """A boolean flag `name` shared with other tools; arguments as `shared_string`'s."""
    return _shared(flags.DEFINE_boolean, ("boolean",), name, default, help_text, module_name)


def shared_enum(name, default, values, help_text, module_name):
    """A flag `name` taking one of `values`, shared with other tools that allow the same values."""
    def define(name, default, help_text, **details):
        return flags.DEFINE_enum(name, default, list(values), help_text, **details)

    return _shared(define, ("enum", tuple(sorted(values))), name, default, help_text,
                   module_name, shown=f"<{'|'.join(values)}>: {help_text}")


def shared_list(name, default, help_text, module_name, check=None):
    """A comma-separated list flag `name` shared with other tools; as `shared_string`'s."""
    return _shared(flags.DEFINE_list, ("list",), name, default, help_text, module_name, check)
