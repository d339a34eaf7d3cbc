"""The deployment's development secrets, kept in the keyspace so that every instance finds the same ones.

In production the secrets come from the environment (PAGE_TOKEN_SECRET, COOKIE_SECRET) and this is never asked. In
development, each secret the environment does not give is 32 random bytes, made once by the first instance that
needs it and claimed with `INSERT ... IF NOT EXISTS`: of two instances starting at once, one claim applies and the
other is answered with the value that won, so both seal and sign with the same key. Nothing about it derives from
a public value (the keyspace's name was what the development secrets came from before): someone who has read the
source still cannot seal a page token or sign a cookie. Whoever can read the keyspace can read them, as they can
read everything else there.
"""

from __future__ import annotations

import secrets

from app.repository.base import RepositoryBase

SECRET_BYTES = 32


class SharedSecrets(RepositoryBase):
    async def secret(self, name: str) -> str:
        """The deployment's secret called `name`, made now if no instance has made it yet."""
        row = (await self.db.execute(self.cql("SELECT value FROM {ks}.shared_secrets WHERE name = ?"), [name])).one()
        if row is not None and row.value:
            return str(row.value)
        made = secrets.token_hex(SECRET_BYTES)
        claimed = await self.db.execute(
            self.cql("INSERT INTO {ks}.shared_secrets (name, value) VALUES (?, ?) IF NOT EXISTS"),
            [name, made],
            write=True,
        )
        if claimed.was_applied:
            return made
        won = claimed.one()  # a condition that failed answers the row as it is: the other instance's secret
        assert won is not None and won.value, f"the shared secret {name} was claimed but holds nothing"
        return str(won.value)
