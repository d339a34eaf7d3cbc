"""Who may do what: the one place that decides it, for the API and the pages alike.

A request is made by a `Caller` (a signed-in reader or librarian) or by nobody. Each handler method declares
the least it needs as an `Access` level, which the web layer checks before the handler runs (anonymous: 401;
a reader asking for staff work: 403). What depends on the data (whose reservation, whose account) is decided
by the functions below, which the handlers call with the facts they have read. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.models import Forbidden, Role, Unauthenticated


class Access(StrEnum):
    """The least a request needs to reach a handler method."""

    PUBLIC = "public"  # anyone: the catalogue, health, the API's document, signing in
    READER = "reader"  # any signed-in caller; what it touches is then checked against who they are
    STAFF = "staff"  # a librarian
    LEGACY = "legacy"  # the earlier system's endpoints: anyone in development, nobody in production
    # Anyone in development, nobody in production (404): GET /metrics, which production serves on its admin port only.
    DEVELOPMENT = "development"
    # GET /api/reservations: a signed-in caller; in development also anyone, as the earlier system's listing of
    # every reservation, which its clean-up script reads.
    READER_OR_LEGACY = "reader_or_legacy"


@dataclass(frozen=True)
class Caller:
    user_id: int
    role: Role
    name: str = ""

    @property
    def is_staff(self) -> bool:
        return self.role is Role.LIBRARIAN


def admit(access: Access, caller: Caller | None) -> None:
    """Raise unless `caller` may reach a handler that needs `access` (LEGACY and DEVELOPMENT are the web layer's to
    decide: they depend on the environment, not on the caller)."""
    if access in (Access.PUBLIC, Access.LEGACY, Access.DEVELOPMENT):
        return
    if caller is None:
        raise Unauthenticated.sign_in_needed()
    if access is Access.STAFF and not caller.is_staff:
        raise Forbidden.staff_only()


def acting_for(caller: Caller | None, user_id: int | None) -> int:
    """The reader a request acts for: the caller's own card when the request names none or names it; another card
    only for a librarian (at the desk)."""
    if caller is None:
        raise Unauthenticated.sign_in_needed()
    if user_id is None or user_id == caller.user_id:
        return caller.user_id
    if caller.is_staff:
        return user_id
    raise Forbidden.another_reader()


def may_see_reader(caller: Caller | None, user_id: int) -> bool:
    """A reader's account, reservations and holds are theirs and the staff's to see."""
    return caller is not None and (caller.is_staff or caller.user_id == user_id)


def check_may_see_reader(caller: Caller | None, user_id: int) -> None:
    if caller is None:
        raise Unauthenticated.sign_in_needed()
    if not may_see_reader(caller, user_id):
        raise Forbidden.another_reader()
