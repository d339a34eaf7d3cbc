"""Search and the staff's lists, the pure part: which terms a book or a reader is found by, how a query becomes
terms, and how a bounded set of matches becomes what a person sees (count, facets, sort order, numbered pages).

How search works on Cassandra alone (no search server). Cassandra 5.0's storage-attached indexes (SAI) have no
text analyzers, but they index the *values* of a `set<text>` and answer `CONTAINS`, and several `CONTAINS`
conditions combine with `AND`. So every book row carries `search_terms`: each word of its title, author and genre,
folded (lower case, accents removed), and each word's prefixes from two letters. A query's words, folded the same
way, must each be one of the book's terms: "riv" finds "River" (a prefix), "evans" and "Évans" find "Kimberly
Evans" (a word of the author, folded), "river night" finds the books with both. The index is also created with
`case_sensitive: false, normalize: true, ascii: true`, so a query written straight in CQL folds as these terms do.

Readers are found the same way, on their own index: each word of the name and of the e-mail address, and each
word's prefixes ("ros" finds Rosa Reader, "rosa.reader@exa" finds rosa.reader@example.org, as its words "rosa",
"reader" and "exa"); the desk types whatever it knows of a reader.

The terms are computed here and written by the repository with every write of the book or card, in the same row,
so they can never describe another version of it than the one stored.

Cassandra cannot sort or count the rows an SAI query finds, so the repository reads up to `RESULT_BOUND + 1`
matches (a few columns each) and this module counts, groups and sorts them: the count is exact up to the bound,
then "more than RESULT_BOUND"; facets and sort order are those of the matches read. The staff's lists (readers, all
reservations) are read the same way, up to the bound, so they too can be sorted, counted and paged with "Previous".

What a person types in a page's search box (or in its URL) becomes a `TypedQuery`: cut to the box's length, with
the words beyond MAX_QUERY_WORDS left out and one-letter searches told apart, so a page can say what it did instead
of answering with an error page.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Generic, TypeVar
from uuid import UUID

from app.models import Book, InvalidInput, Reservation, User
from app.rules import max_length

T = TypeVar("T")

# A word's prefixes are terms from this many letters: one letter would match half the catalogue.
MIN_PREFIX = 2
# Prefixes stop here: a longer word is still found by its first MAX_TERM letters (and a longer query word is cut to
# them), which keeps a book's set small whatever its title.
MAX_TERM = 20
# A query of more words than this is refused: each word is one more index condition.
MAX_QUERY_WORDS = 8
# How many matches one search reads: the count is exact up to here, facets and sorting are over these.
RESULT_BOUND = 1000
# Facet values shown per facet before "Show all" (the most frequent first); every value is counted and reachable.
FACET_SIZE = 8
# The most characters a search box takes, and the most of a query in a URL a page searches for: the same limit as
# the API's `q` (app/rules.py), so the box and the address agree.
MAX_QUERY_CHARS = max_length("q")

# Letters that Unicode does not decompose but that readers type without their marks (the same as the index's
# `ascii` option folds them).
_LETTERS = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ł": "l", "þ": "th", "ð": "d", "ı": "i"})
_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Lower case, without accents: "Évans" -> "evans", "Straße" -> "strasse"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_LETTERS))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The folded words of `text`, in order; an apostrophe or hyphen splits ("O'Brien" -> "o", "brien")."""
    return _WORD.findall(fold(text))


def terms_of(*texts: str) -> set[str]:
    """What a row is found by: every word of `texts`, and each word's prefixes from MIN_PREFIX letters, up to
    MAX_TERM letters."""
    terms: set[str] = set()
    for word in words(" ".join(texts)):
        word = word[:MAX_TERM]
        terms.add(word)
        terms.update(word[:n] for n in range(MIN_PREFIX, len(word)))
    return terms


def search_terms(book: Book) -> set[str]:
    """What a book is found by: the words of its title, author and genre and their prefixes (`terms_of`)."""
    return terms_of(book.title, book.author, book.genre)


def reader_terms(name: str, email: str) -> set[str]:
    """What a card is found by at the desk: the words of the reader's name and e-mail address and their prefixes
    (`terms_of`), so a name's beginning, a surname or the address as typed all find it."""
    return terms_of(name, email)


def _query_words(query: str) -> list[str]:
    """A query's words: folded, cut to MAX_TERM letters, without repeats, and without one-letter words unless one
    is a digit or they are all there is: "a river" means "river" (few titles say "A"), "volume 3" keeps the 3. A
    query of one-letter words only keeps them here, so that `TypedQuery` can tell it apart (`too_short`): the pages
    search nothing for it and say two letters are needed; the API's `q` (`query_terms`) still takes "j" as "j",
    which finds only a book with a one-letter word."""
    found = list(dict.fromkeys(w[:MAX_TERM] for w in words(query)))
    if len(found) > 1:
        found = [w for w in found if len(w) >= MIN_PREFIX or w.isdigit()] or found[:1]
    return found


def query_terms(query: str) -> list[str]:
    """The terms a query must all match (`_query_words`); more than MAX_QUERY_WORDS is refused, as the API does."""
    found = _query_words(query)
    if len(found) > MAX_QUERY_WORDS:
        raise InvalidInput(f"Search for at most {MAX_QUERY_WORDS} words at a time.", field="q")
    return found


@dataclass(frozen=True)
class TypedQuery:
    """What a person typed into a page's search box (or its URL), made searchable rather than refused: `text` is
    what is searched and shown back in the box. `cut`: the query was longer than MAX_QUERY_CHARS and only its start
    is searched (the box itself takes no more, so only an address typed or edited by hand gets here); `dropped`:
    how many words beyond MAX_QUERY_WORDS were left out; `too_short`: every word is one letter (not a digit), which
    no prefix starts with, so there is nothing to search for until a second letter is typed; `wordless`: something
    was typed but it holds no word at all ("!!!", "—", "@"), so there is nothing to search for either (searching
    with no terms would find everything)."""

    text: str
    cut: bool = False
    dropped: int = 0
    too_short: bool = False
    wordless: bool = False

    @classmethod
    def of(cls, raw: str | None) -> TypedQuery:
        raw = (raw or "").strip()
        cut = len(raw) > MAX_QUERY_CHARS
        text = raw[:MAX_QUERY_CHARS].strip() if cut else raw
        found = _query_words(text)
        too_short = bool(found) and all(len(w) < MIN_PREFIX and not w.isdigit() for w in found)
        return cls(text, cut, max(0, len(found) - MAX_QUERY_WORDS), too_short, bool(text) and not found)

    @property
    def unsearchable(self) -> bool:
        """Something was typed that cannot be searched (`too_short` or `wordless`): a page says so beside its box and
        searches nothing, rather than everything."""
        return self.too_short or self.wordless

    @property
    def terms(self) -> list[str]:
        """The terms searched: at most MAX_QUERY_WORDS, none for a search too short."""
        return [] if self.too_short else _query_words(self.text)[:MAX_QUERY_WORDS]

    @property
    def searched(self) -> str:
        """The query as the repository is given it: its first MAX_QUERY_WORDS words, empty when too short."""
        return " ".join(self.terms)


class Sort(StrEnum):
    """The orders a reader can choose. Titles and authors sort as folded text, authors by surname (the last word
    of the name), as a library's catalogue does; books without a year come last in both year orders."""

    TITLE = "title"
    AUTHOR = "author"
    NEWEST = "newest"
    OLDEST = "oldest"

    @property
    def label(self) -> str:
        return {"title": "Title (A–Z)", "author": "Author (A–Z)", "newest": "Newest first", "oldest": "Oldest first"}[
            self.value
        ]

    @classmethod
    def parse(cls, raw: str | None) -> Sort:
        if not raw:
            return cls.TITLE
        try:
            return cls(raw)
        except ValueError:
            choices = ", ".join(s.label for s in cls)
            raise InvalidInput(f"Books can be sorted by {choices}.", field="sort") from None


def _title_key(book: Book) -> tuple[str, str]:
    return fold(book.title), str(book.book_id)


def _name_key(name: str) -> tuple[str, str]:
    """A person's name as a library files it: by surname (the last word), then the whole name."""
    found = words(name)
    return (found[-1] if found else "", fold(name))


def _author_key(book: Book) -> tuple[str, str, str, str]:
    return (*_name_key(book.author), *_title_key(book))


def sort_books(books: Iterable[Book], order: Sort) -> list[Book]:
    """`books` in the reader's chosen order; ties are broken by title, then id, so pages never overlap."""
    if order is Sort.AUTHOR:
        return sorted(books, key=_author_key)
    if order in (Sort.NEWEST, Sort.OLDEST):
        sign = -1 if order is Sort.NEWEST else 1
        return sorted(
            books,
            key=lambda b: (b.published_year is None, sign * (b.published_year or 0), *_title_key(b)),
        )
    return sorted(books, key=_title_key)


@dataclass(frozen=True)
class FacetValue:
    value: str
    count: int


def facet(books: Iterable[Book], field: str) -> list[FacetValue]:
    """Every value of `field` ("genre" or "author") among `books`, the most frequent first (then alphabetically),
    with how many books have each; values that differ only in case or accents count as one (shown as first met).
    A page shows the first FACET_SIZE and offers the rest behind "Show all": none is out of reach."""
    counts: Counter[str] = Counter()
    shown: dict[str, str] = {}
    for book in books:
        value = getattr(book, field)
        key = fold(value)
        counts[key] += 1
        shown.setdefault(key, value)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [FacetValue(shown[key], count) for key, count in ranked]


@dataclass(frozen=True)
class Numbered(Generic[T]):
    """One numbered page of a list read whole up to a bound (a search's matches, the readers, the reservations), and
    what the reader is told about the whole of it."""

    items: list[T]
    total: int  # items read: exact when `exact`, else the bound (there are more)
    exact: bool
    page: int  # 1-based, always an existing page (1 when there is nothing)
    pages: int
    page_size: int

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def first_number(self) -> int:
        """The position of this page's first item among all of them (1-based), for "21–40 of 57"."""
        return (self.page - 1) * self.page_size + 1 if self.items else 0

    @property
    def last_number(self) -> int:
        return (self.page - 1) * self.page_size + len(self.items)


def numbered(ordered: Sequence[T], *, bound: int, page: int, page_size: int, more: bool = False) -> Numbered[T]:
    """Page `page` of `ordered`, a list read up to bound + 1 items (one more than the bound means there are more)
    and already in the order shown. `more`: the read found more than the bound before `ordered` was filtered down
    from it, so the count is not exact whatever is left. A page number beyond the last gives the last page, so
    "next" never leads to an empty page."""
    kept = list(ordered[:bound])
    pages = max(1, -(-len(kept) // page_size))
    page = min(max(page, 1), pages)
    start = (page - 1) * page_size
    exact = len(ordered) <= bound and not more
    return Numbered(kept[start : start + page_size], len(kept), exact, page, pages, page_size)


@dataclass(frozen=True)
class SearchResult(Numbered[Book]):
    """One page of a catalogue search, with the genre and author facets of all its matches. `looked_at`: how many
    matches the search read and kept from (with "available now", more than it shows)."""

    genres: list[FacetValue]
    authors: list[FacetValue]
    looked_at: int

    @property
    def books(self) -> list[Book]:
        return self.items


def page_of(
    matches: Sequence[Book],
    *,
    bound: int,
    order: Sort,
    page: int,
    page_size: int,
    more: bool = False,
    looked_at: int | None = None,
) -> SearchResult:
    """The result of a search whose query read `matches` (at most bound + 1 of them: one more than the bound means
    there are more), in the reader's order, its facets over every match read. When `matches` is what is left of a
    read filtered further (only the books available now), the read decides: `more`, it found more than the bound
    (so no count of what is left is the whole answer), and `looked_at`, how many of its matches were kept from."""
    kept = matches[:bound]
    ordered = sort_books(kept, order) + list(matches[bound:])
    shown = numbered(ordered, bound=bound, page=page, page_size=page_size, more=more)
    return SearchResult(
        **{f.name: getattr(shown, f.name) for f in fields(shown)},
        genres=facet(kept, "genre"),
        authors=facet(kept, "author"),
        looked_at=len(kept) if looked_at is None else looked_at,
    )


# -- the staff's lists --------------------------------------------------------------------------------------------
def sort_readers(readers: Iterable[User]) -> list[User]:
    """Readers as a library files them: by surname, then the whole name, then card number."""
    return sorted(readers, key=lambda u: (*_name_key(u.name), u.user_id))


class ReservationOrder(StrEnum):
    """The orders of a list of reservations: the newest first (the default: what the desk just did is on top), or
    by the book's title."""

    NEWEST = "newest"
    TITLE = "title"

    @property
    def label(self) -> str:
        return {"newest": "Newest first", "title": "Title (A–Z)"}[self.value]

    @classmethod
    def parse(cls, raw: str | None) -> ReservationOrder:
        """The order asked for; anything else (a hand-edited address) is the default, never an error page."""
        try:
            return cls(raw or cls.NEWEST.value)
        except ValueError:
            return cls.NEWEST


def sort_reservations(
    reservations: Iterable[Reservation], order: ReservationOrder, titles: Mapping[UUID, str] | None = None
) -> list[Reservation]:
    """`reservations` in `order`; `titles` by book id, for the title order (a book deleted since, without one,
    comes last). Ties are broken by the other order, then by id, so pages never overlap."""
    titles = titles or {}

    def when(r: Reservation) -> tuple[bool, timedelta]:
        return _newest_first(r.reserved_at)

    def title(r: Reservation) -> tuple[bool, str]:
        name = titles.get(r.book_id)
        return name is None, fold(name or "")

    if order is ReservationOrder.TITLE:
        return sorted(reservations, key=lambda r: (*title(r), when(r), str(r.reservation_id)))
    return sorted(reservations, key=lambda r: (when(r), *title(r), str(r.reservation_id)))


def _newest_first(moment: datetime | None) -> tuple[bool, timedelta]:
    """A sort key putting the latest time first and a missing one last, on the datetime itself: a naive time is UTC,
    as Cassandra gives it back (`.timestamp()` would read it as the machine's local time)."""
    if moment is None:
        return True, timedelta(0)
    utc = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    return False, datetime.max - utc
