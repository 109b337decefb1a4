"""Version directories under a model's base path, numbered as TF Serving reads them.

TF Serving takes every child of the base path whose name parses as an int64
(absl ``SimpleAtoi``: surrounding whitespace and a sign allowed, so "007" is
version 7) as a version, and ignores the rest
(``file_system_storage_path_source.cc``). tfopt reads names the same way, so
the next version it picks is the one the server sees as newest, and a version
written as "7" is known to clash with an existing "007".
"""

import os
import re

import numpy as np

INT64_MAX = 2**63 - 1

# absl's SimpleAtoi: ASCII whitespace around an optionally signed decimal number.
_NUMBER = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)[ \t\n\v\f\r]*")


def parse(name):
    """The version number TF Serving reads from a directory name, or None."""
    match = _NUMBER.fullmatch(name)
    if match is None:
        return None
    number = int(match.group(1))
    return number if -INT64_MAX - 1 <= number <= INT64_MAX else None


def versions(base_path):
    """``{version: [child names]}`` of the base path (several names may share a number)."""
    found = {}
    try:
        names = os.listdir(base_path)
    except FileNotFoundError:
        return found
    for name in names:
        number = parse(name)
        if number is not None:
            found.setdefault(number, []).append(name)
    return found


def next_version(base_path):
    """One more than the highest version under `base_path`, 1 when there is none."""
    found = versions(base_path)
    highest = max(found, default=0)
    if highest >= INT64_MAX:
        raise ValueError(f"{base_path!r} already holds version {highest}, the largest TF "
                         "Serving can read; pass an explicit version=.")
    return max(highest + 1, 1)


def validate_version(version):
    """`version` as an int, or None; TypeError/ValueError for anything TF Serving cannot read."""
    if version is None:
        return None
    if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)):
        raise TypeError(f"version must be an int (a version directory's number) or None for "
                        f"the next one, got {type(version).__name__} {version!r}.")
    if not 0 <= version <= INT64_MAX:
        raise ValueError(f"version must be between 0 and {INT64_MAX} (TF Serving reads version "
                         f"directories as int64), got {version}. Pass None for the next one.")
    return int(version)
