"""The app's profile under load, summed up: where its main thread spends its time.

pyinstrument samples the event loop's thread only (the driver's I/O thread is not in it). Time spent
waiting in the selector is idle: the app had nothing to do. The rest is the work the app does per request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyinstrument.renderers import ConsoleRenderer
from pyinstrument.session import Session

TOP = 25


def _key(frame: Any) -> str:
    return f"{frame.function} ({frame.file_path_short}:{frame.line_no})"


def _is_idle(frame: Any) -> bool:
    # The event loop blocked in its selector: nothing to do until an answer arrives.
    return frame.function == "select" and str(frame.file_path_short).endswith("selectors.py")


def _walk(frame: Any, totals: dict[str, Counter[str]], seen: tuple[str, ...]) -> float:
    """Adds up the frame's subtree and returns its busy time: its samples less those spent idle."""
    if _is_idle(frame):
        totals["idle"]["idle"] += frame.time
        return 0.0
    key = _key(frame)
    # Self time already holds the synthetic "[self]" and await children, so only real children are walked.
    busy = frame.total_self_time
    for child in frame.children:
        if not child.is_synthetic:
            busy += _walk(child, totals, (*seen, key))
    totals["self"][key] += frame.total_self_time
    # The service's own functions by busy inclusive time, once per stack however deep one recurses.
    if str(frame.file_path_short).startswith("app/") and key not in seen:
        totals["app"][key] += busy
    return busy


def top_costs(session_file: Path, out_dir: Path) -> dict[str, Any]:
    """The busiest frames of the profile (idle time left out), and the service's own functions by inclusive
    time; also writes pyinstrument's text report beside the session."""
    session = Session.load(str(session_file))
    root = session.root_frame()
    text = ConsoleRenderer(unicode=False, color=False, show_all=False, timeline=False).render(session)
    text_file = out_dir / (session_file.stem + ".txt")
    text_file.write_text(text)
    totals: dict[str, Counter[str]] = {"self": Counter(), "app": Counter(), "idle": Counter()}
    if root is not None:
        _walk(root, totals, ())
    sampled = root.time if root is not None else 0.0
    idle = totals["idle"]["idle"]
    busy = max(sampled - idle, 1e-9)

    def share(items: Sequence[tuple[str, float]]) -> list[dict[str, Any]]:
        return [{"frame": k, "seconds": round(t, 3), "share_of_busy": round(t / busy, 4)} for k, t in items]

    return {
        "session": str(session_file),
        "text": str(text_file),
        "duration_s": round(session.duration, 2),
        "cpu_s": round(session.cpu_time, 2),
        "sampled_s": round(sampled, 2),
        "idle_s": round(idle, 2),
        "busy_s": round(busy, 2),
        "self": share(totals["self"].most_common(TOP)),
        "app_inclusive": share(totals["app"].most_common(TOP)),
    }
