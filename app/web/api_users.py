"""/api/users: the cards (readers and librarians), each named by an integer card number (user_id).

Staff list, add and delete cards; a reader sees and edits only their own (name, e-mail, PIN). Role and
deactivation are staff's to change. `/api/users/{id}/sessions` signs a card out everywhere.
"""

from __future__ import annotations

from typing import Any

from app.access import Access, Caller, check_may_see_reader
from app.models import Forbidden, InvalidInput, Role, User
from app.rules import MAX_PIN
from app.web.base import JsonHandler
from app.web.parsing import (
    optional_email,
    optional_text,
    parse_page_size,
    parse_user_id,
    parse_user_id_text,
    required_email,
    required_text,
)
from app.web.representations import user_json

STAFF_FIELDS = ("role", "active")


def optional_role(data: dict[str, Any]) -> Role | None:
    value = data.get("role")
    if value is None:
        return None
    if value not in {r.value for r in Role}:
        raise InvalidInput(f"role must be one of: {', '.join(r.value for r in Role)}", field="role")
    return Role(value)


def optional_active(data: dict[str, Any]) -> bool | None:
    value = data.get("active")
    if value is not None and not isinstance(value, bool):
        raise InvalidInput("active must be true or false", field="active")
    return value


class UsersHandler(JsonHandler):
    ACCESS = {"get": Access.STAFF, "post": Access.STAFF}

    async def get(self) -> None:
        page = await self.library.list_users(
            page_size=parse_page_size(self.query("page_size")),
            page=self.page_param(),
        )
        self.write_page([user_json(u) for u in page.items], page.next_page)

    async def post(self) -> None:
        """A new card; an existing card number is a 409, never an overwrite. With `pin` it can sign in at once."""
        data = self.json_body()
        user_id = parse_user_id(data["user_id"]) if data.get("user_id") is not None else None
        pin = data.get("pin")
        user = await self.library.create_user(
            required_text(data, "name"),
            required_email(data),
            user_id,
            role=optional_role(data) or Role.READER,
            pin=pin,
        )
        self.created(f"/api/users/{user.user_id}", user_json(user))


class UserHandler(JsonHandler):
    ACCESS = {"get": Access.READER, "put": Access.READER, "patch": Access.READER, "delete": Access.STAFF}

    def own_or_staff(self, raw_id: str) -> int:
        user_id = parse_user_id_text(raw_id)
        check_may_see_reader(self.caller, user_id)
        return user_id

    async def get(self, raw_id: str) -> None:
        self.write_json(user_json(await self.library.get_user(self.own_or_staff(raw_id))))

    async def put(self, raw_id: str) -> None:
        data = self.json_body()
        user_id = self.own_or_staff(raw_id)
        await self.library.update_user(user_id, name=required_text(data, "name"), email=required_email(data))
        self.write_json(user_json(await self.apply_account_fields(user_id, data)))

    async def patch(self, raw_id: str) -> None:
        data = self.json_body()
        user_id = self.own_or_staff(raw_id)
        await self.library.update_user(user_id, name=optional_text(data, "name"), email=optional_email(data))
        self.write_json(user_json(await self.apply_account_fields(user_id, data)))

    async def apply_account_fields(self, user_id: int, data: dict[str, Any]) -> User:
        """`pin` (the card's own, or staff), `active` (staff only: false deactivates the card and signs it out)."""
        caller: Caller | None = self.caller
        if any(data.get(f) is not None for f in STAFF_FIELDS) and not (caller and caller.is_staff):
            raise Forbidden.staff_only()
        if data.get("role") is not None:
            raise InvalidInput("a card's role is chosen when it is added", field="role")
        if data.get("pin") is not None:
            if caller is not None and caller.is_staff:
                await self.library.set_pin(user_id, data["pin"])
            else:
                current = data.get("current_pin")
                if not isinstance(current, str) or len(current) > MAX_PIN:
                    raise InvalidInput("current_pin is required to change your PIN", field="current_pin")
                await self.library.change_own_pin(user_id, current, data["pin"])
        active = optional_active(data)
        if active is not None:
            await self.library.set_active(user_id, active)
        return await self.library.get_user(user_id)

    async def delete(self, raw_id: str) -> None:
        await self.library.delete_user(parse_user_id_text(raw_id))
        self.no_content()


class UserSessionsHandler(JsonHandler):
    ACCESS = {"delete": Access.READER}

    async def delete(self, raw_id: str) -> None:
        """Signs the card out everywhere: its own holder, or a librarian (a lost card, a shared computer)."""
        user_id = parse_user_id_text(raw_id)
        check_may_see_reader(self.caller, user_id)
        ended = await self.library.revoke_sessions(user_id)
        self.write_json({"user_id": user_id, "sessions_ended": ended})
