"""/api/session: sign in (a bearer token for the API), see who a token signs in, sign out."""

from __future__ import annotations

from app.access import Access
from app.models import InvalidInput
from app.rules import MAX_PIN, SESSION_SECONDS
from app.web.base import JsonHandler
from app.web.parsing import parse_user_id, required
from app.web.representations import caller_json


class SessionHandler(JsonHandler):
    ACCESS = {"get": Access.READER, "post": Access.PUBLIC, "delete": Access.READER}

    async def get(self) -> None:
        assert self.caller is not None  # admitted as READER
        self.write_json(caller_json(self.caller))

    async def post(self) -> None:
        """Card number and PIN in, an opaque token out: sent back as `Authorization: Bearer <token>` until it
        expires (`expires_in` seconds) or is revoked. The token is shown once and stored only as a digest."""
        data = self.json_body()
        card = parse_user_id(required(data, "user_id"))
        pin = required(data, "pin")
        if not isinstance(pin, str) or len(pin) > MAX_PIN:
            raise InvalidInput(f"pin must be a string of at most {MAX_PIN} characters", field="pin")
        token, caller = await self.library.sign_in(card, pin)
        self.write_json(
            {"token": token, "token_type": "Bearer", "expires_in": SESSION_SECONDS, **caller_json(caller)}, 201
        )

    async def delete(self) -> None:
        await self.library.sign_out(self.bearer_token)
        self.no_content()
