"""Text-proto files for tensorflow_model_server: checked, written atomically, read back.

TF Serving reads its configuration files (``--model_config_file``,
``--batching_parameters_file``, ``--monitoring_config_file``) with protobuf's
text format, and with ``--model_config_file_poll_wait_seconds`` it re-reads the
model config while running. tfopt therefore builds each file as its proto
message, never as hand-formatted text, and writes it through
`tfopt._files.atomic_path`, so a server polling the file sees the old version or
the new one, never half of one.
"""

import numbers
import os
import re

from google.protobuf import text_format

from tfopt import _files
from tfopt.export import _inputs

# Model names and version labels appear in REST paths (/v1/models/NAME/labels/LABEL),
# where '/' and ':' end the name; tfopt keeps to characters no client must escape.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
INT64_MAX = 2**63 - 1
UINT32_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1


def write_text_proto(message, path, flag):
    """Writes `message` to `path` in text format, atomically; returns the path.

    Args:
      message: the proto message to write.
      path: where the file goes; missing directories are created.
      flag: the tensorflow_model_server flag that reads the file, for the
        comment heading it.

    Returns:
      `path`, as given.
    """
    text = (f"# {message.DESCRIPTOR.full_name}, read by tensorflow_model_server {flag}\n"
            + text_format.MessageToString(message))
    with _files.atomic_path(path) as temporary:
        _write(temporary, text)
    return path


def _write(path, text):
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)


def read_text_proto(path, message_class):
    """Parses the text-format file `path` into a new `message_class` message.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: the file is not a valid text `message_class`; the message
        begins as TF Serving's own ("Error parsing text-format <type>") and
        names the line.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No {message_class.DESCRIPTOR.full_name} file at {path!r}"
                                + (": it is a directory." if os.path.isdir(path) else "."))
    with open(path, encoding="utf-8") as file:
        text = file.read()
    message = message_class()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        line = error.GetLine()
        # ParseError's text starts with "line:column : "; the line numbers of
        # TF Serving's message are given separately, as it does.
        reason = re.sub(r"^\d+:\d+ : ", "", str(error))
        source = text.splitlines()[line - 1].strip() if 0 < line <= len(text.splitlines()) else ""
        raise ValueError(f"Error parsing text-format {message_class.DESCRIPTOR.full_name}: "
                         f"{line}:{error.GetColumn()}: {reason} (file {path!r}, line {line}: "
                         f"{source!r})") from None
    return message


def validate_file_path(path, action, file_name):
    """Raises ValueError unless `path` names a file `action` can write.

    Args:
      path: the path given.
      action: what is being done, for the message (e.g. "model_server_config").
      file_name: the usual file name, suggested when `path` is a directory.
    """
    if isinstance(path, (str, os.PathLike)) and os.path.isdir(path):
        raise ValueError(f"{action}: path {os.fspath(path)!r} is a directory; give a file in it, "
                         f"e.g. {os.path.join(os.fspath(path), file_name)!r}.")
    _inputs.validate_path(path, action)


def validate_integer(value, what, minimum, maximum=INT64_MAX):
    """Returns `value` as an int, or raises naming `what` unless minimum <= value <= maximum.

    The default maximum is that of the int64 fields most TF Serving numbers are.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an integer, got {value!r} ({type(value).__name__}).")
    if not minimum <= value <= maximum:
        raise ValueError(f"{what} must be an integer from {minimum} to {maximum}, got {value!r}.")
    return int(value)


def validate_name(value, what):
    """Raises unless `value` is a name a REST path can hold unescaped (letters, digits, . _ -)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {value!r} ({type(value).__name__}).")
    if not _NAME.match(value):
        raise ValueError(f"{what} must be letters, digits, '.', '_' or '-', starting with a "
                         f"letter or digit (it appears in REST paths such as "
                         f"/v1/models/<name>/labels/<label>), got {value!r}.")
    return value
