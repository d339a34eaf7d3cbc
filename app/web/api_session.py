"""/api/session: sign in (a bearer token for the API), see who a token signs in, sign out."""

from __future__ import annotations

from app.access import Access
from app.rules import SESSION_SECONDS, check_device_token, check_pin_as_typed
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
        expires (`expires_in` seconds) or is revoked. The token is shown once and stored only as a digest. `device`
        in and out: the client's device token for this card, sent back at its next sign-in, so that its attempts
        count apart from strangers' guesses (app/repository/accounts.py)."""
        data = self.json_body()
        card = parse_user_id(required(data, "user_id"))
        pin = check_pin_as_typed(required(data, "pin"))
        device = check_device_token(data.get("device"))
        signed_in = await self.library.sign_in(card, pin, device)
        self.write_json(
            {
                "token": signed_in.token,
                "token_type": "Bearer",
                "expires_in": SESSION_SECONDS,
                "device": signed_in.device,
                **caller_json(signed_in.caller),
            },
            201,
        )

    async def delete(self) -> None:
        await self.library.sign_out(self.bearer_token)
        self.no_content()
