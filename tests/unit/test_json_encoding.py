"""The one JSON encoder of the answers (app/web/encoding.py): what the standard library wrote, it still writes."""

from __future__ import annotations

import json

from app.web.encoding import encode_json


def test_answers_decode_to_what_was_encoded_whatever_the_text() -> None:
    for value in ({"title": "Évans et l'œuvre"}, [{"a": 1, "b": None}], {"error": "x\u0000y"}, {1: "card"}):
        expected = json.loads(json.dumps(value))
        assert json.loads(encode_json(value)) == expected
    assert encode_json({"t": "é"}) == '{"t":"é"}'.encode()  # UTF-8, not escaped: every answer says charset=UTF-8


def test_text_orjson_refuses_is_written_escaped_as_before() -> None:
    assert encode_json({"q": "\ud800"}) == b'{"q": "\\ud800"}'
    assert json.loads(encode_json([2**70])) == [2**70]
