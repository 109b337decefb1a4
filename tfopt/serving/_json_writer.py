"""JSON text written byte for byte as TF Serving writes it.

TF Serving answers REST calls through rapidjson's ``PrettyWriter`` (4-space
indent), switching arrays to single-line mode inside each row, and writes
floating-point numbers with its own ``WriteDecimal`` (``util/json_tensor.cc``).
Python's `json` module can do neither: it has no per-array layout switch and
prints float32 values with float64 digits (``0.1`` as ``0.10000000149011612``).
Clients only parse the text, but TF Serving's documented outputs (and tests
that compare bodies) depend on the exact form, so it is reproduced here.
"""

import json
import math
import re

import numpy as np

_CONTROL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u00[0-9a-f]{2}")
# Significant digits that round-trip (std::numeric_limits<T>::max_digits10).
_MAX_DIGITS = {np.float32: 9, np.float64: 17}


def format_decimal(value, dtype=np.float32):
    """`value` as TF Serving's WriteDecimal prints a float or double.

    The shortest ``%g`` form (six digits) when it reads back as the same
    number, else ``%.9g`` (float) or ``%.17g`` (double); whole numbers get
    ``.0`` (``3.0``, but ``9e+06`` keeps its exponent); non-finite values are
    the bare words ``NaN``, ``Infinity`` and ``-Infinity``.
    """
    value = dtype(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{float(value):g}"
    if dtype(text) != value:
        text = f"{float(value):.{_MAX_DIGITS[dtype]}g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def format_string(text):
    """A JSON string literal as rapidjson writes it: only quotes, backslashes and controls escaped."""
    literal = json.dumps(text, ensure_ascii=False)
    if "\\u00" in literal:  # rapidjson writes hex digits in upper case: \u001F
        literal = _CONTROL_ESCAPE.sub(lambda match: match.group(0).upper().replace("\\U", "\\u"),
                                      literal)
    return literal


class PrettyWriter:
    """rapidjson's PrettyWriter: events in, indented JSON text out.

    Args:
      single_line_arrays: start in rapidjson's ``kFormatSingleLineArray`` mode.
        Defaults to False.
      max_chars: stop writing once the text reaches this many characters, as
        TF Serving's ``JsonWriterWithLimit`` does for values quoted in error
        messages. Defaults to None (no limit).
    """

    def __init__(self, single_line_arrays=False, max_chars=None):
        self.single_line_arrays = single_line_arrays
        self._max_chars = max_chars
        self._parts = []
        self._length = 0
        # One [is_array, value_count] per open container, innermost last.
        self._levels = []

    def text(self):
        """The JSON text written so far."""
        return "".join(self._parts)

    def _put(self, text):
        self._parts.append(text)
        self._length += len(text)

    def in_limit(self):
        """Whether the text is still under `max_chars`."""
        return self._max_chars is None or self._length < self._max_chars

    def _indent(self):
        self._put(" " * (4 * len(self._levels)))

    def _prefix(self):
        # Mirrors PrettyWriter::PrettyPrefix: what goes before a value or key.
        if not self._levels:
            return
        level = self._levels[-1]
        if level[0]:
            if level[1] > 0:
                self._put(", " if self.single_line_arrays else ",")
            if not self.single_line_arrays:
                self._put("\n")
                self._indent()
        else:
            if level[1] > 0:
                self._put(",\n" if level[1] % 2 == 0 else ": ")
            else:
                self._put("\n")
            if level[1] % 2 == 0:
                self._indent()
        level[1] += 1

    def raw(self, text):
        """Writes a scalar (number, ``true``, ``null``, or an encoded string) as given."""
        if self.in_limit():
            self._prefix()
            self._put(text)

    def key(self, name):
        """Writes an object member's name."""
        self.raw(format_string(name))

    def start(self, is_array):
        """Opens an array (`is_array` True) or an object."""
        if self.in_limit():
            self._prefix()
            self._levels.append([is_array, 0])
            self._put("[" if is_array else "{")

    def end(self):
        """Closes the innermost array or object."""
        if not self.in_limit():
            return
        is_array, count = self._levels.pop()
        if count and not (is_array and self.single_line_arrays):
            self._put("\n")
            self._indent()
        self._put("]" if is_array else "}")


def format_double(value):
    """`value` as rapidjson's Writer::Double writes it (Grisu2 digits, then ``Prettify``).

    ``1e308``, ``1e-7``, ``12340000000.0``, ``0.001234``: Python's repr differs
    in the exponent form (``1e+308``, ``1e-07``) and switches to it earlier.
    """
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    # value = int(digits) * 10**k, with no leading or trailing zeros in digits.
    digits = (whole + fraction).lstrip("0")
    stripped = digits.rstrip("0")
    k = int(exponent or 0) - len(fraction) + len(digits) - len(stripped)
    digits = stripped
    length = len(digits)
    kk = length + k  # 10^(kk-1) <= value < 10^kk
    if 0 <= k and kk <= 21:
        text = digits + "0" * k + ".0"
    elif 0 < kk <= 21:
        text = digits[:kk] + "." + digits[kk:]
    elif -6 < kk <= 0:
        text = "0." + "0" * -kk + digits
    elif length == 1:
        text = f"{digits}e{kk - 1}"
    else:
        text = f"{digits[0]}.{digits[1:]}e{kk - 1}"
    return sign + text


class _Stop(Exception):
    """rapidjson's Writer refuses NaN/Infinity and abandons the rest of the value."""


def debug_string(value, max_chars=256):
    """A parsed JSON value as TF Serving quotes it in error messages (cut near 256 bytes)."""
    writer = PrettyWriter(single_line_arrays=True, max_chars=max_chars)

    def visit(item):
        if not writer.in_limit():
            raise _Stop  # also keeps the recursion as shallow as the text is long
        if isinstance(item, dict):
            writer.start(False)
            for name, member in item.items():
                writer.key(name)
                visit(member)
            writer.end()
        elif isinstance(item, list):
            writer.start(True)
            for member in item:
                visit(member)
            writer.end()
        elif isinstance(item, str):
            writer.raw(format_string(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise _Stop
            writer.raw(format_double(item))
        else:
            writer.raw(json.dumps(item))

    try:
        visit(value)
    except _Stop:
        pass
    return writer.text()
