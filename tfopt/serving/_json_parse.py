"""JSON text read as TF Serving's rapidjson reads it, and the error TF Serving reports.

rapidjson (``kParseIterativeFlag | kParseNanAndInfFlag | kParseStopWhenDoneFlag``)
accepts ``NaN``, ``Inf``, ``Infinity`` (signed), ignores whatever follows the
root value, and has no nesting limit. Python's `json` does the parsing here; the
differences are bridged: rapidjson's extra words are rewritten, trailing text is
left unread, and a document nested past Python's recursion limit is read again
by a small iterative parser.
"""

import json
import re

from tfopt.serving._json_writer import debug_string

class JsonTensorError(ValueError):
    """A request or response TF Serving would reject, with TF Serving's message.

    Attributes:
      message: the text TF Serving puts in ``{"error": message}``.
      code: the canonical status name, ``"INVALID_ARGUMENT"`` (HTTP 400) unless
        TF Serving uses another (``"UNIMPLEMENTED"`` for dtypes JSON cannot carry).
    """

    def __init__(self, message, code="INVALID_ARGUMENT"):
        super().__init__(message)
        self.message = message
        self.code = code



def _finite_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonTensorError("JSON Parse error: Number too big to be stored in double.")
    return value


def _first_key_wins(pairs):
    # rapidjson's FindMember returns the first of duplicate keys.
    result = {}
    for name, value in pairs:
        result.setdefault(name, value)
    return result


# rapidjson (kParseNanAndInfFlag) also reads Inf, -Inf and -NaN; Python's json does not.
_RAPIDJSON_WORDS = re.compile(r'("(?:[^"\\]|\\.)*")|-NaN|Inf(?!inity)', re.DOTALL)
_DECODER = json.JSONDecoder(object_pairs_hook=_first_key_wins)
# A float hook costs a Python call per number (four times the parse time), so it runs
# only when a literal could overflow a double: one with a 3-digit exponent. Integers
# past uint64 (doubles in rapidjson) are handled where they are used (`check_value`).
_CHECKED_DECODER = json.JSONDecoder(parse_float=_finite_float, object_pairs_hook=_first_key_wins)
_LARGE_EXPONENT = re.compile(r"[eE]\+?\d{3}")
_PYTHON_TO_RAPIDJSON = {
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid control character at": "Invalid encoding in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
}


def _rapidjson_word(match):
    if match.group(1):
        return match.group(1)
    return "NaN" if match.group(0) == "-NaN" else "Infinity"


def _comma_message(text, position):
    # Python says "Expecting ',' delimiter" for both containers; rapidjson names the one open.
    depth = []
    for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text[:position]):
        char = token.group(0)
        if char in "[{":
            depth.append(char)
        elif char in "]}" and depth:
            depth.pop()
    if depth and depth[-1] == "{":
        return "Missing a comma or '}' after an object member."
    return "Missing a comma or ']' after an array element."


def parse_json(body):
    """The JSON object of a request or response body, parsed as TF Serving's rapidjson reads it.

    NaN, Inf and Infinity (with a sign) are numbers; anything after the root
    value is ignored (rapidjson's kParseStopWhenDoneFlag); the root must be an
    object.

    Raises:
      JsonTensorError: "JSON Parse error: ..." or "JSON Value: ... Is not object".
    """
    if isinstance(body, (bytes, bytearray, memoryview)):
        # Not validated as UTF-8 by TF Serving either; the bytes survive into DT_STRING.
        body = bytes(body).decode("utf-8", "surrogateescape")
    if not isinstance(body, str):
        raise TypeError(f"body must be bytes or str; got {type(body).__name__}. Pass the "
                        "request body as received.")
    if not body:
        raise JsonTensorError("JSON Parse error: The document is empty")
    text = body.lstrip(" \t\n\r")
    offset = len(body) - len(text)
    if not text:
        raise JsonTensorError(f"JSON Parse error: The document is empty. at offset: {offset}")
    if "Inf" in text or "-NaN" in text:
        text = _RAPIDJSON_WORDS.sub(_rapidjson_word, text)
    try:
        decoder = _CHECKED_DECODER if _LARGE_EXPONENT.search(text) else _DECODER
        value, _ = decoder.raw_decode(text)
    except json.JSONDecodeError as error:
        reason = _PYTHON_TO_RAPIDJSON.get(error.msg, "Invalid value.")
        if error.msg == "Expecting ',' delimiter":
            reason = _comma_message(text, error.pos)
        raise JsonTensorError(f"JSON Parse error: {reason} at offset: {offset + error.pos}")
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise JsonTensorError("JSON Parse error: Number too big to be stored in double.") from None
    except RecursionError:
        # rapidjson parses iteratively and has no depth limit; Python's parser has one.
        value = _parse_iteratively(text, offset)
    if not isinstance(value, dict):
        raise JsonTensorError(f"JSON Value: {debug_string(value)} Is not object")
    return value




_TOKEN = re.compile(r'''[ \t\n\r]*(?:("(?:[^"\\\x00-\x1f]|\\.)*")|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)|(true|false|null|NaN|-?Infinity)|([][{},:]))''')
_WORDS = {"true": True, "false": False, "null": None, "NaN": float("nan"),
          "Infinity": float("inf"), "-Infinity": float("-inf")}


def _scalar(string, number, word):
    if string is not None:
        return json.loads(string)
    if word is not None:
        return _WORDS[word]
    if any(mark in number for mark in ".eE"):
        return _finite_float(number)
    try:
        return int(number)
    except ValueError:  # more than 4300 digits
        raise JsonTensorError("JSON Parse error: Number too big to be stored in double.") from None


def _parse_iteratively(text, offset):
    """The first JSON value of `text`, parsed with an explicit stack instead of recursion.

    Only for documents nested deeper than Python's parser goes (TF Serving's
    test sends 500000 brackets); slower, and its errors are all "Invalid value.".
    """
    stack = []  # open containers as [container, pending object key]
    expect = "value"  # value | value_or_end | key | key_or_end | colon | comma_or_end
    position = 0
    while True:
        match = _TOKEN.match(text, position)
        if not match:
            raise JsonTensorError(f"JSON Parse error: Invalid value. at offset: "
                                  f"{offset + position}")
        position = match.end()
        string, number, word, mark = match.groups()
        done = None
        if expect in ("value", "value_or_end") and mark in ("[", "{"):
            stack.append([[] if mark == "[" else {}, None])
            expect = "value_or_end" if mark == "[" else "key_or_end"
            continue
        if expect in ("value", "value_or_end") and mark is None:
            done = _scalar(string, number, word)
        elif expect in ("key", "key_or_end") and string is not None:
            stack[-1][1] = json.loads(string)
            expect = "colon"
            continue
        elif expect == "colon" and mark == ":":
            expect = "value"
            continue
        elif expect == "comma_or_end" and mark == ",":
            expect = "value" if isinstance(stack[-1][0], list) else "key"
            continue
        elif (mark == "]" and expect in ("value_or_end", "comma_or_end")
              and isinstance(stack[-1][0], list)) or (
                  mark == "}" and expect in ("key_or_end", "comma_or_end")
                  and isinstance(stack[-1][0], dict)):
            done = stack.pop()[0]
        else:
            raise JsonTensorError(f"JSON Parse error: Invalid value. at offset: "
                                  f"{offset + match.start()}")
        if not stack:
            return done
        container, key = stack[-1]
        if isinstance(container, list):
            container.append(done)
        else:
            container.setdefault(key, done)
        expect = "comma_or_end"
