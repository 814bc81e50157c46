"""How large an edition's HTML part is, and keeping it under `[edition] html_max_kb`.

Gmail clips an HTML part over about 102 KB behind "View entire message", and what it
clips holds the footer with the unsubscribe link. So every edition is measured as it
is rendered; `fit_edition` makes a draft fit (blurbs and notes shortened first, then
the last "also new" headlines held over for the next edition, then the last stories
told in full moved to the "also new" list), and `require_fits`
refuses to send one that does not: the one rule, asked wherever sending starts
(`deliver.worker.start_sending`, whoever calls it, and a test send).
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Collection
from dataclasses import dataclass

from digest.errors import NotReady
from digest.models import Edition, EditionItem, EditionStatus
from digest.render import SUBSCRIBER_SLOTS, Rendered, Slotted

#: What each per-reader value is counted as: more than an address, a name or a signed
#: link takes, so a reader's own copy is never larger than measured.
SLOT_BYTES = 300
#: Blurbs and notes are cut to these lengths in turn, until the edition fits.
SHORTEN_TO = (1200, 800, 500, 320)


def html_bytes(rendered: Rendered) -> int:
    """Bytes of the HTML part as it goes out: transfer-encoded, in the smaller of
    quoted-printable and base64, as `deliver.message` picks. Gmail's clipping point is
    reported to move with the encoding (Spam Resource measured it in 2022; Leanplum
    counts the encoded message), so the encoded size is the one that must fit: a
    Korean part of 97 KB goes out as about 130 KB of base64."""
    values = dict.fromkeys(SUBSCRIBER_SLOTS, "x" * SLOT_BYTES)
    data = Slotted(rendered.html, rendered.slot_key).fill(values, html=True).encode()
    quoted = len(binascii.b2a_qp(data.replace(b"\n", b"\r\n")))
    if data.isascii():
        return quoted
    # 76-character lines of base64, each ending CRLF.
    encoded = (len(data) + 2) // 3 * 4
    return min(quoted, encoded + 2 * -(-encoded // 76))


def kb(size: int) -> str:
    """ "79 KB": bytes in whole KB, rounded up, so "100 KB" is never over 100 KB."""
    return f"{-(-size // 1024)} KB"


@dataclass(frozen=True)
class Fit:
    """What `fit_edition` did to an edition: its HTML size before and after, in bytes."""

    before: int
    after: int
    limit: int
    shortened: int = 0  # blurbs and notes cut short
    moved: int = 0  # stories moved to the "also new" list
    held: int = 0  # stories of the "also new" list held over for the next edition
    best: int = 0  # could not fit, nothing changed: the size fitting would have reached

    @property
    def fits(self) -> bool:
        return self.after <= self.limit

    @property
    def changed(self) -> bool:
        return bool(self.shortened or self.moved or self.held)

    def message(self) -> str:
        """One sentence for the CLI and the desk."""
        if self.best:
            return (f"HTML is {kb(self.after)}, over the {kb(self.limit)} limit, and cannot be "
                    f"made to fit ({kb(self.best)} at best, with blurbs and notes cut short "
                    "and stories moved to \"also new\" or held over): nothing was changed. "
                    "Drop stories on the desk, or raise [edition] html_max_kb.")
        if not self.changed:
            return f"HTML {kb(self.after)} of {kb(self.limit)} (Gmail clips above 102 KB)."
        done = []
        if self.shortened:
            done.append(f"shortened {self.shortened} blurb(s) and note(s)")
        if self.moved:
            stories = "story" if self.moved == 1 else "stories"
            done.append(f"moved {self.moved} {stories} to the \"also new\" list")
        if self.held:
            stories = "story" if self.held == 1 else "stories"
            done.append(f"held {self.held} {stories} over for the next edition")
        return (f"HTML was {kb(self.before)}, over the {kb(self.limit)} limit: "
                f"{' and '.join(done)}; now {kb(self.after)}.")


def fit_edition(edition: Edition, render: Callable[[], Rendered], limit_kb: float,
                owed: Collection[int] = ()) -> Fit:
    """Make a draft's HTML part fit in `limit_kb`: cut the longest blurbs and notes
    (at a word, with "…") to 1200, 800, 500 and then 320 characters, rendering after
    each step; then hold the last stories of the "also new" list over for the next
    edition (`Edition.held`: they are not lost, and the stories told in full stay so);
    then move the last stories told in full to "also new", keeping the first, and hold
    those over too if need be. Changes the edition's items in place (the caller
    commits); an edition that is not a draft is measured, never changed. `render`
    renders it as it stands. Stories `owed` (held over by the last edition, by article
    id) are held again only when nothing else is left to hold: newer news waits first."""
    limit = int(limit_kb * 1024)
    before = size = html_bytes(render())
    if size <= limit or edition.status != EditionStatus.DRAFT:
        return Fit(before, size, limit)
    full = [i for i in sorted(edition.items, key=lambda i: i.position) if not i.brief]
    words = {id(i): (i.summary, i.note) for i in full}  # given back to stories moved
    cut: set[tuple[int, str]] = set()  # (position, "summary" or "note"), each once
    for cap in SHORTEN_TO:
        if _shorten(full, cap, cut):
            size = html_bytes(render())
            if size <= limit:
                return Fit(before, size, limit, len(cut))
    size, held = _hold_over(edition, render, size, limit, keep=owed)
    moved = 0
    while size > limit and len(full) > 1:
        # size / len(full) is more than a story takes (the masthead and footer are in
        # it), so this never moves more stories than the excess needs.
        count = min(len(full) - 1, max(1, (size - limit) * len(full) // size))
        for _ in range(count):
            item = full.pop()
            # In "also new" a story shows no blurb or note: it keeps them whole, should
            # an editor tell it in full again.
            item.brief = True
            item.summary, item.note = words[id(item)]
            cut -= {(item.position, "summary"), (item.position, "note")}
        moved += count
        size = html_bytes(render())
    size, more = _hold_over(edition, render, size, limit, keep=owed)
    size, last = _hold_over(edition, render, size, limit, keep=())
    return Fit(before, size, limit, len(cut), moved, held + more + last)


def _hold_over(edition: Edition, render: Callable[[], Rendered], size: int,
               limit: int, *, keep: Collection[int]) -> tuple[int, int]:
    """Hold the last "also new" stories (of those gathered, but those in `keep`; one
    added by URL has no article to hold) over for the next edition until the edition
    fits: (its size, how many were held)."""
    brief = [(i, i.article_id) for i in sorted(edition.items, key=lambda i: i.position)
             if i.brief and i.article_id is not None and i.article_id not in keep]
    held = 0
    each = 0  # what one takes, measured on the first (a long link takes kilobytes)
    while size > limit and brief:
        count = min(len(brief), -(-(size - limit) // each)) if each else 1
        for _ in range(count):
            item, article_id = brief.pop()
            edition.held = [*(edition.held or ()), article_id]
            edition.items.remove(item)
        held += count
        before, size = size, html_bytes(render())
        each = max(1, (before - size) // count)
    return size, held


def _shorten(items: list[EditionItem], cap: int, cut: set[tuple[int, str]]) -> bool:
    """Cut every blurb and note of `items` longer than `cap`, noting which in `cut`."""
    any_cut = False
    for item in items:
        for field in ("summary", "note"):
            text = getattr(item, field)
            if len(text) > cap:
                setattr(item, field, shorten(text, cap))
                cut.add((item.position, field))
                any_cut = True
    return any_cut


def shorten(text: str, cap: int) -> str:
    """`text` cut to at most `cap` characters at the last space, ending "…"."""
    if len(text) <= cap:
        return text
    head = text[: cap - 1]
    space = head.rfind(" ")
    if space > cap // 2:
        head = head[:space]
    return head.rstrip(" ,;:.-–—") + "…"


def require_fits(edition: Edition, list_name: str, rendered: Rendered, limit_kb: float) -> None:
    """May this rendered edition go out? NotReady, saying what to shorten, if its HTML
    part is over `limit_kb` (`[edition] html_max_kb`)."""
    limit = int(limit_kb * 1024)
    size = html_bytes(rendered)
    if size <= limit:
        return
    full = [i for i in sorted(edition.items, key=lambda i: i.position) if not i.brief]
    longest = sorted(full, key=lambda i: len(i.summary) + len(i.note), reverse=True)[:3]
    which = ", ".join(str(i.position + 1) for i in sorted(longest, key=lambda i: i.position))
    raise NotReady(
        f"edition #{edition.number} of {list_name!r} is {kb(size)} of HTML, over the "
        f"{kb(limit)} limit ([edition] html_max_kb): Gmail would clip it and hide the "
        f"unsubscribe link. Shorten the longest blurbs and notes (stories {which}) or move "
        f"stories to the \"also new\" list on the desk (/desk/{list_name}); "
        f"`digest edition preview --list {list_name}` does it for a draft")
