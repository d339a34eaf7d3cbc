"""/api/users: the readers, each named by an integer card number (user_id)."""

from __future__ import annotations

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


class UsersHandler(JsonHandler):
    async def get(self) -> None:
        page = await self.library.list_users(
            page_size=parse_page_size(self.query("page_size")),
            page=self.page_param(),
        )
        self.write_page([user_json(u) for u in page.items], page.next_page)

    async def post(self) -> None:
        data = self.json_body()
        user_id = parse_user_id(data["user_id"]) if data.get("user_id") is not None else None
        user = await self.library.create_user(required_text(data, "name"), required_email(data), user_id)
        self.created(f"/api/users/{user.user_id}", user_json(user))


class UserHandler(JsonHandler):
    async def get(self, raw_id: str) -> None:
        self.write_json(user_json(await self.library.get_user(parse_user_id_text(raw_id))))

    async def put(self, raw_id: str) -> None:
        data = self.json_body()
        user = await self.library.update_user(
            parse_user_id_text(raw_id), name=required_text(data, "name"), email=required_email(data)
        )
        self.write_json(user_json(user))

    async def patch(self, raw_id: str) -> None:
        data = self.json_body()
        user = await self.library.update_user(
            parse_user_id_text(raw_id), name=optional_text(data, "name"), email=optional_email(data)
        )
        self.write_json(user_json(user))

    async def delete(self, raw_id: str) -> None:
        await self.library.delete_user(parse_user_id_text(raw_id))
        self.no_content()
