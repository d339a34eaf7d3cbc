"""Catalogue search, the pure part: which terms a book is found by, how a query becomes terms, and how a bounded
set of matches becomes what a reader sees (count, facets, sort order, numbered pages).

How search works on Cassandra alone (no search server). Cassandra 5.0's storage-attached indexes (SAI) have no
text analyzers, but they index the *values* of a `set<text>` and answer `CONTAINS`, and several `CONTAINS`
conditions combine with `AND`. So every book row carries `search_terms`: each word of its title, author and genre,
folded (lower case, accents removed), and each word's prefixes from two letters. A query's words, folded the same
way, must each be one of the book's terms: "riv" finds "River" (a prefix), "evans" and "Évans" find "Kimberly
Evans" (a word of the author, folded), "river night" finds the books with both. The index is also created with
`case_sensitive: false, normalize: true, ascii: true`, so a query written straight in CQL folds as these terms do.

The terms are computed here and written by the repository with every write of the book, in the same row, so they
can never describe another version of the book than the one stored.

Cassandra cannot sort or count the rows an SAI query finds, so the repository reads up to `RESULT_BOUND + 1`
matches (a few columns each) and this module counts, groups and sorts them: the count is exact up to the bound,
then "more than RESULT_BOUND"; facets and sort order are those of the matches read.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from app.models import Book, InvalidInput

# A word's prefixes are terms from this many letters: one letter would match half the catalogue.
MIN_PREFIX = 2
# Prefixes stop here: a longer word is still found by its first MAX_TERM letters (and a longer query word is cut to
# them), which keeps a book's set small whatever its title.
MAX_TERM = 20
# A query of more words than this is refused: each word is one more index condition.
MAX_QUERY_WORDS = 8
# How many matches one search reads: the count is exact up to here, facets and sorting are over these.
RESULT_BOUND = 1000
# Facet values shown per facet (the most frequent first).
FACET_SIZE = 8

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


def search_terms(book: Book) -> set[str]:
    """What a book is found by: every word of its title, author and genre, and each word's prefixes from MIN_PREFIX
    letters, up to MAX_TERM letters."""
    terms: set[str] = set()
    for word in words(f"{book.title} {book.author} {book.genre}"):
        word = word[:MAX_TERM]
        terms.add(word)
        terms.update(word[:n] for n in range(MIN_PREFIX, len(word)))
    return terms


def query_terms(query: str) -> list[str]:
    """The terms a query must all match, each a folded word of it (cut to MAX_TERM letters), without repeats. A
    one-letter word is dropped unless it is the only word or a digit: "a river" means "river" (few titles say
    "A"), "volume 3" keeps the 3, and "j" alone means "j"."""
    found = list(dict.fromkeys(w[:MAX_TERM] for w in words(query)))
    if len(found) > 1:
        found = [w for w in found if len(w) >= MIN_PREFIX or w.isdigit()] or found[:1]
    if len(found) > MAX_QUERY_WORDS:
        raise InvalidInput(f"Search for at most {MAX_QUERY_WORDS} words at a time.", field="q")
    return found


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


def _author_key(book: Book) -> tuple[str, str, str, str]:
    name = words(book.author)
    return (name[-1] if name else "", fold(book.author), *_title_key(book))


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


def facet(books: Iterable[Book], field: str, size: int = FACET_SIZE) -> list[FacetValue]:
    """The most frequent values of `field` ("genre" or "author") among `books`, with how many books have each;
    values that differ only in case or accents count as one (shown as first met)."""
    counts: Counter[str] = Counter()
    shown: dict[str, str] = {}
    for book in books:
        value = getattr(book, field)
        key = fold(value)
        counts[key] += 1
        shown.setdefault(key, value)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [FacetValue(shown[key], count) for key, count in ranked[:size]]


@dataclass(frozen=True)
class SearchResult:
    """One page of a search, and what the reader is told about the whole of it."""

    books: list[Book]
    total: int  # matches read: exact when `exact`, else RESULT_BOUND (there are more)
    exact: bool
    page: int  # 1-based, always an existing page (1 when there is nothing)
    pages: int
    page_size: int
    genres: list[FacetValue]
    authors: list[FacetValue]

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def first_number(self) -> int:
        """The position of this page's first book among all the matches (1-based), for "21–40 of 57"."""
        return (self.page - 1) * self.page_size + 1 if self.books else 0

    @property
    def last_number(self) -> int:
        return (self.page - 1) * self.page_size + len(self.books)


def page_of(matches: Sequence[Book], *, bound: int, order: Sort, page: int, page_size: int) -> SearchResult:
    """The result of a search whose query read `matches` (at most bound + 1 of them: one more than the bound means
    there are more). A page number beyond the last gives the last page, so "next" never leads to an empty page."""
    exact = len(matches) <= bound
    kept = list(matches[:bound])
    pages = max(1, -(-len(kept) // page_size))
    page = min(max(page, 1), pages)
    ordered = sort_books(kept, order)
    start = (page - 1) * page_size
    return SearchResult(
        books=ordered[start : start + page_size],
        total=len(kept),
        exact=exact,
        page=page,
        pages=pages,
        page_size=page_size,
        genres=facet(kept, "genre"),
        authors=facet(kept, "author"),
    )
