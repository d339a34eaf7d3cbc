"""The OpenAPI document describes exactly what `make_app` serves: read from the route table itself, so a new
route or a new method on a handler cannot be left out of the document, and the document names nothing that
is not served."""

from __future__ import annotations

import re

import tornado.web

from app.web import ROUTES, OpenApiHandler, pages
from app.web.openapi import document

METHODS = ("get", "post", "put", "patch", "delete")


def served_methods(handler: type[tornado.web.RequestHandler]) -> set[str]:
    """The HTTP methods the handler really answers: the ones it overrides from Tornado's base class."""
    return {m for m in METHODS if getattr(handler, m) is not getattr(tornado.web.RequestHandler, m)}


def api_routes() -> dict[str, set[str]]:
    """Route pattern -> methods, for every route that is not a page of the UI or the document itself."""
    return {
        pattern: served_methods(handler)
        for pattern, handler in ROUTES
        if handler.__module__ != pages.__name__ and handler is not OpenApiHandler
    }


def documented() -> dict[str, set[str]]:
    """The document's paths as route patterns (`{book_id}` is one path segment), with their methods."""
    return {
        re.sub(r"\{[^}]+\}", "([^/]+)", path): {m for m in item if m in METHODS}
        for path, item in document()["paths"].items()
    }


def test_every_served_api_route_and_method_is_documented_and_nothing_else() -> None:
    assert api_routes() == documented()


def test_the_ui_routes_are_only_pages() -> None:
    """What the comparison leaves out is the UI: HTML pages, not part of the JSON contract."""
    left_out = [pattern for pattern, handler in ROUTES if pattern not in api_routes()]
    assert "/openapi.json" in left_out
    assert all(
        pattern == "/openapi.json" or handler.__module__ == pages.__name__
        for pattern, handler in ROUTES
        if pattern in left_out
    )
