"""The one way an answer's JSON is written: orjson, which encodes a catalogue page in a fifth of the time the
standard library takes (0.10 against 0.49 ms for 100 books, measured in the app's profile), and writes the same JSON
but for non-ASCII text, sent as UTF-8 rather than escaped (every JSON answer says charset=UTF-8)."""

from __future__ import annotations

import json
from typing import Any

import orjson


def encode_json(data: Any) -> bytes:
    try:
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        # What orjson refuses and the standard library writes (text with an unpaired surrogate, an integer past 64
        # bits): escaped, as before.
        return json.dumps(data).encode()
