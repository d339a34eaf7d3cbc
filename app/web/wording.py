"""The pages' words: what a refusal says to a person, how a date and a count read, what a search did with what was
typed, and how a line of a book's history reads.

The API answers in the domain's sentences, which name fields and ids ("q must be at most 300 characters", "book
<uuid> is already reserved"), because a program reads them. A page says the same thing the way a reader would:
no field names, no ids, dates in the library's time zone as "23 November 2026, 14:05". Every page and form
handler words its errors here, so there is one place to change a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from app.models import (
    Book,
    BookEvent,
    Conflict,
    ConflictKind,
    Forbidden,
    HoldEnd,
    InvalidInput,
    LibraryError,
    NotFound,
    Place,
    TooManyAttempts,
    Unauthenticated,
    UnknownBook,
    UnknownReader,
)
from app.search import MAX_QUERY_CHARS, MAX_QUERY_WORDS, MIN_PREFIX, TypedQuery

# What each input is called on a page ("q must be ..." reads "Your search must be ...").
FIELD_WORDS = {
    "q": "Your search",
    "title": "The title",
    "author": "The author",
    "genre": "The genre",
    "published_year": "The year",
    "until": "The date you are away until",
    "name": "The name",
    "email": "The e-mail address",
    "pin": "The PIN",
    "current_pin": "Your current PIN",
    "card": "The card number",
    "user_id": "The card number",
    "book": "The book",
    "book_id": "The book's address",
    "reservation_id": "The reservation's address",
    "pin_again": "The new PIN's repeat",
    "move": "The reservation to change",
    "sort": "The order",
    "page": "The page",
}
_PHRASES = [
    (re.compile(r"must be a non-empty string"), "cannot be empty"),
    (re.compile(r"must be at most (\d+) characters"), r"can be at most \1 characters long"),
    (re.compile(r"must not hold an unpaired surrogate.*"), "holds a character that cannot be stored"),
    (re.compile(r"(is not a valid UUID|must be a UUID string).*"), "is not one this library gave out"),
    (re.compile(r"must be a positive integer.*|must be an integer.*|must be between.*"), "must be a number"),
    (re.compile(r"must be a whole year, not in the future"), "must be a year such as 1999, not in the future"),
]
_UUID = re.compile(r"\s*\(?(reservation |book )?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)?", re.I)
PAGE_EXPIRED = "That page link is no longer valid: start again from the first page."


def sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def error_words(error: LibraryError, *, book: Book | None = None, moving: bool = False) -> str:
    """What a page says for `error`. `book`: the book the action was about, named by its title when the error is
    about it (the error's fields say so, never its sentence); `moving`: the action was moving a reservation, which
    a refusal leaves as it was."""
    about_it = book is not None and error.book_id in (None, book.book_id)
    title = f"“{book.title}”" if book is not None and about_it else "That book"
    words = _words(error, title)
    if moving and isinstance(error, Conflict) and error.kind is ConflictKind.BOOK_HELD:
        words = f"{words[:-1]}; your reservation is unchanged."
    return words


def _words(error: LibraryError, book: str) -> str:
    if isinstance(error, InvalidInput):
        return _input_words(error)
    if isinstance(error, UnknownBook):
        return f"{book} is no longer in the catalogue."
    if isinstance(error, UnknownReader):
        return "There is no reader with that card number."
    if isinstance(error, NotFound):
        if error.reservation_id is not None:
            if error.cancelled:
                return "That reservation was cancelled, so there is nothing more to do with it."
            return "That reservation no longer exists: it may have been cancelled already."
        return "That book or reader no longer exists."
    if isinstance(error, Conflict):
        return _conflict_words(error, book)
    if isinstance(error, Forbidden):
        if error.reservation_id is not None:
            return "That reservation belongs to another reader."
        return sentence(str(error))
    if isinstance(error, TooManyAttempts):
        return (
            f"{sentence(str(error))} On a device you have signed in on before you can still sign in, and a librarian"
            " can set a new PIN, which lifts the lock."
        )
    if isinstance(error, Unauthenticated) and (error.deactivated or error.attempts_left is not None):
        return _sign_in_words(error)
    return sentence(_UUID.sub("", str(error)))


def _sign_in_words(error: Unauthenticated) -> str:
    """A refused sign-in: a wrong card or PIN, with a warning before the last try; or, after a right PIN only, that
    the card is deactivated (which then tells a guesser nothing)."""
    if error.deactivated:
        return "Your PIN is right, but this card has been deactivated. Please ask at the library's desk."
    words = "That did not work: the card number or PIN is wrong. Check both and try again."
    if error.last_try_next:
        words += " Careful: one more wrong PIN and signing in to this card from here is locked for a while."
    elif error.locked_now:
        words += " Signing in to this card from here is now locked for a while; a librarian can set a new PIN."
    return words


def _input_words(error: InvalidInput) -> str:
    text = str(error)
    if error.field == "page":
        return PAGE_EXPIRED
    if error.field and text.startswith(f"{error.field} "):
        rest = text[len(error.field) + 1 :]
        for pattern, words in _PHRASES:
            rest = pattern.sub(words, rest)
        text = f"{FIELD_WORDS.get(error.field, 'This value')} {rest}"
    return sentence(_UUID.sub("", text))


def _conflict_words(error: Conflict, book: str) -> str:
    kind = error.kind
    if kind is ConflictKind.BOOK_HELD:
        return f"You already hold {book}." if error.held_by_caller else f"{book} is already reserved by another reader."
    if kind is ConflictKind.BOOK_WAS_HELD:
        return f"{book} was already reserved by another reader."
    if kind is ConflictKind.RESERVATION_CHANGED:
        return "Your reservation was changed by another request meanwhile, so it was not moved. Try again."
    if kind is ConflictKind.BOOK_IN_USE:
        return f"{book} is reserved or readers are in its queue, so it cannot be deleted yet."
    if kind is ConflictKind.ALREADY_WAITING:
        return f"You are already in the queue for {book if book != 'That book' else 'that book'}."
    if kind is ConflictKind.PLACE_SUSPENDED:
        return "Your place in the queue for this book is suspended: resume it, and you keep your place in line."
    if kind is ConflictKind.ON_LOAN:
        return "This book is on loan to you: it stays yours until it is returned at the library's desk."
    if kind is ConflictKind.ALREADY_LENT:
        return f"{book} is on loan already."
    if kind is ConflictKind.NOT_ON_LOAN:
        return f"{book} is not ready to be collected or returned: check whose reservation it is."
    if kind is ConflictKind.LIMIT_REACHED:
        return (
            "You have as many reservations or places in queues as the library allows at once: cancel one, or wait "
            "until one ends."
        )
    if kind is ConflictKind.RENEWED_ENOUGH:
        return "This reservation has been renewed as often as the library allows: collect the book before its date."
    if kind is ConflictKind.READER_IN_USE:
        return "This reader still holds reservations: cancel them first."
    if kind is ConflictKind.READER_WAITING:
        return "This reader is waiting in the queue for books: take them out of those queues first."
    if kind is ConflictKind.CARD_TAKEN:
        return f"Card {error.user_id} belongs to another reader already: leave the number out to get a free one."
    return sentence(_UUID.sub("", str(error)))


def when(moment: datetime | None, time_zone: str) -> str:
    """A stored time (UTC, as Cassandra gives it back) as the library says it: "23 November 2026, 14:05"."""
    if moment is None:
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    local = aware.astimezone(ZoneInfo(time_zone))
    return f"{local.day} {local:%B %Y, %H:%M}"


def tomorrow(time_zone: str) -> str:
    """Tomorrow's date in the library's time zone, as a date field takes it (the earliest end of a suspension)."""
    return (datetime.now(ZoneInfo(time_zone)) + timedelta(days=1)).date().isoformat()


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def place_words(place: Place) -> str:
    """A reader's place in a book's queue, as they read it: "next in line", "2nd of 4 in the queue"."""
    if place.position == 1:
        return "next in line" if place.waiting == 1 else f"next in line ({count(place.waiting, 'reader')} waiting)"
    return f"{ordinal(place.position)} of {place.waiting} in the queue"


HOLD_END_WORDS = {
    HoldEnd.CANCELLED: "cancelled",
    HoldEnd.EXPIRED: "not collected in time: it went to the next reader",
    HoldEnd.LEFT: "left the queue",
    HoldEnd.COLLECTED: "collected at the desk",
    HoldEnd.RETURNED: "returned",
}


def count(number: int, noun: str, plural: str | None = None) -> str:
    """A number and its noun, agreeing: "1 book", "2 books", "1,000 readers"."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


def too_short(typed: TypedQuery, example: str = "“ri” finds River and Rivera") -> str:
    """What a page says instead of "nothing matches" for a search of one letter: the two-letter minimum."""
    one = f"“{typed.text}” is" if " " not in typed.text else "Each of those words is"
    letters = "two" if MIN_PREFIX == 2 else str(MIN_PREFIX)
    return f"{one} a single letter: type at least {letters} letters of a word to search ({example})."


# The example each search box's refusal gives of a search that works.
READER_EXAMPLE = "“ro” finds Rosa and Ross"
BOOK_EXAMPLE = "“ha” finds Harbor and Hamlet"


def no_words(typed: TypedQuery, example: str = "“ri” finds River and Rivera") -> str:
    """What a page says instead of searching for something that holds no word ("!!!", "—"): nothing was searched."""
    return f"“{typed.text}” has no letters or digits to search for: type a word, or its first two letters ({example})."


def unsearchable(typed: TypedQuery, example: str = "“ri” finds River and Rivera") -> str | None:
    """What a page says beside a search box for what it cannot search (one letter, no word at all); None otherwise."""
    if typed.too_short:
        return too_short(typed, example)
    if typed.wordless:
        return no_words(typed, example)
    return None


def no_card(number: str, *, found: bool) -> str:
    """What the readers search says of digits that are no card's number, searched in names and e-mails instead:
    `found`, whether that search found anyone."""
    if found:
        return (
            f"No reader has card number {number}: these are the readers whose name or e-mail has a word beginning"
            f" {number}."
        )
    return (
        f"No reader has card number {number}, and no name or e-mail has a word beginning {number}. Check the number,"
        " or search by name or e-mail."
    )


def too_many_readers(typed: str, kept: int) -> str:
    """The desk's reservations filtered by a reader search that found more readers than it keeps."""
    return (
        f"More than {count(kept, 'reader')} match “{typed}”: these are the reservations of {kept:,} of them. Type"
        " more of the name or the card number."
    )


def too_many_books(typed: str, kept: int) -> str:
    """The desk's reservations filtered by a book search that found more books than it looks at."""
    return (
        f"More than {count(kept, 'book')} match “{typed}”: only their first {kept:,} are looked at. Add a word of"
        " the title."
    )


def query_notes(typed: TypedQuery) -> list[str]:
    """What a page did with a search it could not take as it came (cut, words left out), said rather than refused."""
    notes = []
    if typed.cut:
        notes.append(
            f"Your search was longer than the {MAX_QUERY_CHARS:,} characters the box takes, so only its beginning"
            " was searched."
        )
    if typed.dropped:
        notes.append(f"Only the first {MAX_QUERY_WORDS} words were searched: {count(typed.dropped, 'word')} left out.")
    return notes


def history_words(event: BookEvent, reader: str, by: str | None = None) -> str:
    """A line of a book's history for the desk. `reader`: whose reservation ("Rosa Reader (card 12)"); `by`: who did
    it when another than the reader did (a librarian at the desk), else None."""
    actor, whose = (by, f"the reservation of {reader}") if by else (reader, "their reservation")
    desk = " at the desk" if by else ""
    if event is BookEvent.RESERVED:
        words = f"{actor} reserved it for {reader} at the desk." if by else f"{reader} reserved it."
    elif event is BookEvent.RENEWED:
        words = f"{actor} renewed {whose}{desk}."
    elif event is BookEvent.MOVED_HERE:
        words = f"{actor} moved {whose} here from another book{desk}."
    elif event is BookEvent.MOVED_AWAY:
        words = f"{actor} moved {whose} to another book{desk}."
    else:
        words = f"{actor} cancelled {whose}{desk}."
    return sentence(words)


def card_words(names: Mapping[int, str], card: int | None) -> str:
    """A card as a page names it: "Rosa Reader (card 12)", or "card 12" for a card deleted since."""
    if card is None:
        return "Someone"
    name = names.get(card)
    return f"{name} (card {card})" if name else f"card {card}"
