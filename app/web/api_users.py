"""/api/users: the cards (readers and librarians), each named by an integer card number (user_id).

Staff list (or find, `q`: beginnings of the words of a name or e-mail, as `GET /api/books?q=` finds books), add and
delete cards; a reader sees and edits only their own (name, e-mail, PIN). Role and
deactivation are staff's to change. `/api/users/{id}/sessions` signs a card out everywhere. Who may change what,
and what a change ends or logs, are the service's rules (app/service.py); this module parses and answers.
"""

from __future__ import annotations

from typing import Any

from app.access import Access
from app.models import InvalidInput, Role
from app.service import AccountChange
from app.web.base import JsonHandler
from app.web.parsing import (
    optional_email,
    optional_text,
    optional_text_param,
    parse_page_size,
    parse_user_id,
    parse_user_id_text,
    required_email,
    required_text,
)
from app.web.representations import user_json


def optional_role(data: dict[str, Any]) -> Role | None:
    value = data.get("role")
    if value is None:
        return None
    if value not in {r.value for r in Role}:
        raise InvalidInput(f"role must be one of: {', '.join(r.value for r in Role)}", field="role")
    return Role(value)


def account_change(data: dict[str, Any], *, name: str | None, email: str | None) -> AccountChange:
    """What a PUT or PATCH of a card asks to change: `pin` (with `current_pin` for one's own), and the staff's
    `active`; a `role` is refused by the service, whatever its value."""
    return AccountChange(
        name=name,
        email=email,
        pin=data.get("pin"),
        current_pin=data.get("current_pin"),
        active=optional_active(data),
        changes_role=data.get("role") is not None,
    )


def optional_active(data: dict[str, Any]) -> bool | None:
    value = data.get("active")
    if value is not None and not isinstance(value, bool):
        raise InvalidInput("active must be true or false", field="active")
    return value


class UsersHandler(JsonHandler):
    ACCESS = {"get": Access.STAFF, "post": Access.STAFF}

    async def get(self) -> None:
        page = await self.library.list_users(
            q=optional_text_param(self.query("q"), "q"),
            page_size=parse_page_size(self.query("page_size")),
            page=self.page_param(),
        )
        self.write_page([user_json(u) for u in page.items], page.next_page)

    async def post(self) -> None:
        """A new card; an existing card number is a 409, never an overwrite. With `pin` it can sign in at once."""
        data = self.json_body()
        user_id = parse_user_id(data["user_id"]) if data.get("user_id") is not None else None
        pin = data.get("pin")
        user = await self.service.add_reader(
            self.caller,
            required_text(data, "name"),
            required_email(data),
            user_id,
            role=optional_role(data) or Role.READER,
            pin=pin,
        )
        self.created(f"/api/users/{user.user_id}", user_json(user))


class UserHandler(JsonHandler):
    ACCESS = {"get": Access.READER, "put": Access.READER, "patch": Access.READER, "delete": Access.STAFF}

    async def get(self, raw_id: str) -> None:
        self.write_json(user_json(await self.service.account(self.caller, parse_user_id_text(raw_id))))

    async def put(self, raw_id: str) -> None:
        data = self.json_body()
        change = account_change(data, name=required_text(data, "name"), email=required_email(data))
        user = await self.service.update_account(self.caller, parse_user_id_text(raw_id), change)
        self.write_json(user_json(user))

    async def patch(self, raw_id: str) -> None:
        data = self.json_body()
        change = account_change(data, name=optional_text(data, "name"), email=optional_email(data))
        user = await self.service.update_account(self.caller, parse_user_id_text(raw_id), change)
        self.write_json(user_json(user))

    async def delete(self, raw_id: str) -> None:
        await self.service.delete_reader(self.caller, parse_user_id_text(raw_id))
        self.no_content()


class UserSessionsHandler(JsonHandler):
    ACCESS = {"delete": Access.READER}

    async def delete(self, raw_id: str) -> None:
        """Signs the card out everywhere: its own holder, or a librarian (a lost card, a shared computer)."""
        user_id = parse_user_id_text(raw_id)
        ended = await self.service.sign_out_everywhere(self.caller, user_id)
        self.write_json({"user_id": user_id, "sessions_ended": ended})
