"""The Tornado application: the JSON API, the earlier system's endpoints, and the developer UI.

Nothing that decides a reservation lives in the process: every handler asks `Library`, which asks
Cassandra, so any number of instances on one cluster behave as one service.
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import tornado.web

from app.access import Access
from app.repository import Library
from app.rules import MAX_PIN, MIN_PIN, MIN_STAFF_PIN, max_length
from app.search import FACET_SIZE, MAX_QUERY_CHARS
from app.service import LibraryService
from app.settings import Settings
from app.web import api_books, api_queues, api_reservations, api_session, api_users, legacy, pages
from app.web.base import JsonHandler
from app.web.guards import GuardedApplication
from app.web.health import HealthHandler
from app.web.monitoring import MetricsHandler, finished, route_labels
from app.web.openapi import document
from app.web.wording import count, tomorrow, when

PROJECT_DIR = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = PROJECT_DIR / "templates"
STATIC_DIR = PROJECT_DIR / "static"

UUID = r"([^/]+)"  # parsed by the handler, so a malformed id is a 400 that names the field, not a 404


class OpenApiHandler(JsonHandler):
    ACCESS = {"get": Access.PUBLIC}

    def initialize(self) -> None:
        self._document = json.dumps(document(production=self.app_settings.production))

    def get(self) -> None:
        self.finish(self._document)


# Every URL the service answers, and its handler. The OpenAPI document must describe every route here that is
# not a page of the UI (tests/unit/test_openapi_routes.py holds it to that).
ROUTES: list[tuple[str, type[tornado.web.RequestHandler]]] = [
    # JSON API
    (r"/health", HealthHandler),
    (r"/openapi.json", OpenApiHandler),
    (r"/metrics", MetricsHandler),  # development only: production serves it on METRICS_PORT (app/web/monitoring.py)
    (r"/api/books", api_books.BooksHandler),
    (rf"/api/books/{UUID}", api_books.BookHandler),
    (rf"/api/books/{UUID}/queue", api_queues.BookQueueHandler),
    (rf"/api/books/{UUID}/queue/suspension", api_queues.QueueSuspensionHandler),
    (rf"/api/books/{UUID}/loan", api_queues.BookLoanHandler),
    (r"/api/session", api_session.SessionHandler),
    (r"/api/users", api_users.UsersHandler),
    (rf"/api/users/{UUID}", api_users.UserHandler),
    (rf"/api/users/{UUID}/sessions", api_users.UserSessionsHandler),
    (rf"/api/users/{UUID}/queues", api_queues.ReaderQueuesHandler),
    (rf"/api/users/{UUID}/history", api_queues.ReaderHistoryHandler),
    (r"/api/reservations", api_reservations.ReservationsHandler),
    (rf"/api/reservations/{UUID}", api_reservations.ReservationHandler),
    # the earlier system's endpoints
    (r"/make_reservation", legacy.MakeReservationHandler),
    (r"/update_reservation", legacy.UpdateReservationHandler),
    (r"/remove_reservation", legacy.RemoveReservationHandler),
    # the UI: public pages, a reader's own, and the staff screens (each handler declares its access)
    (r"/", pages.CatalogueHandler),
    (r"/sign-in", pages.SignInHandler),
    (r"/sign-out", pages.SignOutHandler),
    (r"/status", pages.StatusPageHandler),
    (r"/books/add", pages.AddBookHandler),
    (rf"/books/{UUID}", pages.BookPageHandler),
    (rf"/books/{UUID}/reserve", pages.ReserveHandler),
    (rf"/books/{UUID}/queue", pages.JoinQueueHandler),
    (rf"/books/{UUID}/leave", pages.LeaveQueueHandler),
    (rf"/books/{UUID}/hold", pages.DeskHoldHandler),
    (rf"/books/{UUID}/suspend", pages.SuspendPlaceHandler),
    (rf"/books/{UUID}/resume", pages.ResumePlaceHandler),
    (rf"/books/{UUID}/collect", pages.CollectHandler),
    (rf"/books/{UUID}/return", pages.ReturnHandler),
    (rf"/books/{UUID}/edit", pages.EditBookHandler),
    (rf"/books/{UUID}/delete", pages.DeleteBookHandler),
    (r"/me", pages.MyReservationsHandler),
    (r"/me/pin", pages.ChangeOwnPinHandler),
    (r"/reservations", pages.AllReservationsHandler),
    (rf"/reservations/{UUID}/cancel", pages.CancelHandler),
    (rf"/reservations/{UUID}/move", pages.MoveHandler),
    (r"/readers", pages.ReadersHandler),
    (r"/readers/add", pages.AddReaderHandler),
    (rf"/readers/{UUID}", pages.ReaderPageHandler),
    (rf"/readers/{UUID}/edit", pages.EditReaderHandler),
    (rf"/readers/{UUID}/active", pages.ReaderActiveHandler),
    (rf"/readers/{UUID}/sign-out", pages.ReaderSignOutHandler),
]


def make_app(library: Library, settings: Settings) -> tornado.web.Application:
    jinja_env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template, whatever its file name: nothing a reader typed is ever markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Dates and times on every page, as the library says them, in its time zone (app/web/wording.py).
    jinja_env.filters["when"] = lambda moment: when(moment, settings.time_zone)
    # The rules a form states in its labels and limits (app/rules.py, app/search.py), so a form never disagrees with
    # the check: a search box takes exactly what its address may hold.
    jinja_env.globals.update(
        MIN_PIN=MIN_PIN,
        MIN_STAFF_PIN=MIN_STAFF_PIN,
        MAX_PIN=MAX_PIN,
        MAX_QUERY_CHARS=MAX_QUERY_CHARS,
        FACET_SIZE=FACET_SIZE,
        max_length=max_length,
        count=count,
        tomorrow=lambda: tomorrow(settings.time_zone),
    )
    # Every request passes app/web/guards.py (host, body size, content type) and every answer gets its headers.
    return GuardedApplication(
        ROUTES,
        default_handler_class=pages.PageNotFoundHandler,
        static_path=str(STATIC_DIR),
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"httponly": True, "samesite": "Lax"},
        cookie_secret=settings.cookie_secret or library.cookie_secret,  # the deployment's (app/repository)
        # Tornado's debug mode serves tracebacks and reloads code; only ever on when DEBUG asks for it.
        debug=settings.debug,
        serve_traceback=False,
        # Each request's access line, and its count and latency by route (app/web/monitoring.py).
        log_function=finished,
        route_labels=route_labels(ROUTES),
        library=library,
        service=LibraryService.over(library),
        app_settings=settings,
        jinja_env=jinja_env,
    )


__all__ = ["ROUTES", "make_app"]
