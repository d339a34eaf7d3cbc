"""GET /health: can the service read from Cassandra at its configured consistency right now."""

from __future__ import annotations

from cassandra import ConsistencyLevel

from app.access import Access
from app.models import DatabaseUnavailable
from app.web.base import RETRY_AFTER_SECONDS, JsonHandler


class HealthHandler(JsonHandler):
    ACCESS = {"get": Access.PUBLIC}

    async def get(self) -> None:
        settings = self.app_settings
        consistency = ConsistencyLevel.value_to_name[settings.consistency]
        try:
            await self.library.ping()
        except DatabaseUnavailable as error:
            self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
            self.write_json({"status": "unavailable", "error": str(error), "consistency": consistency}, 503)
            return
        # Not the keyspace: its name is of use to nobody outside, and it seeded the default page-token secret.
        self.write_json({"status": "ok", "consistency": consistency})
