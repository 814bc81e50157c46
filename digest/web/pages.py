"""How every HTML page of the site is rendered: templates/web/*.html, each given one
dataclass (a `Page`) as `page`, by `Pages`; who is visiting (`WebSession`); the message
page of refusals and errors; and the wording helpers `sentence` and `mask_email`.

The pages share the email's Jinja2 environment (`App.templates`): the same loader, so a
user's `templates_dir` overrides web pages exactly as it overrides mail, the same
autoescaping of every `.html` file and the same StrictUndefined, so a typo in a template
fails loudly instead of showing an empty string. The dataclasses of each part's pages
live with that part: `public_views`, `desk.views`, the console's modules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import jinja2
from fastapi.responses import HTMLResponse, Response

from digest.users import UserView

BASE_TEMPLATE = "web/base.html"
STYLESHEET = "web/site.css"
#: Where the stylesheet is served; the query holds its hash, so it can be cached for long.
STYLESHEET_PATH = "/static/site.css"



@dataclass(frozen=True)
class WebSession:
    """Who is visiting (None: nobody logged in) and the CSRF token of their forms; every
    page shows it (`digest.web.auth` reads it from the cookie)."""

    user: UserView | None
    csrf: str


# Pages behind a signed link show part of an address and act on it: neither the browser
# nor a proxy may keep a copy.
NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True, kw_only=True)
class Page:
    """What every page has: the <title> and the language of its fixed text."""

    title: str
    lang: str = "en"


@dataclass(frozen=True, kw_only=True)
class MessagePage(Page):
    """web/message.html: a refusal or an error, in words a reader can act on.

    `mailto` is an address that unsubscribes by mail, offered when a link fails."""

    heading: str
    message: str
    mailto: str = ""


class Pages:
    """Renders pages to responses."""

    def __init__(self, env: jinja2.Environment) -> None:
        self.env = env
        self.stylesheet = env.get_template(STYLESHEET).render()
        digest = hashlib.sha256(self.stylesheet.encode()).hexdigest()[:12]
        self.stylesheet_url = f"{STYLESHEET_PATH}?v={digest}"
        # Fail at start-up, not on the first visitor, if an override breaks the layout.
        env.get_template(BASE_TEMPLATE)

    def render(self, name: str, page: Page, *, status: int = 200,
               private: bool = False, headers: Mapping[str, str] | None = None,
               viewer: WebSession | None = None) -> HTMLResponse:
        """`name` rendered with `page`; `private` pages are never cached.

        With `viewer` (pages behind a login, and the login form), the template also gets
        `viewer` (the logged-in user or None) and `csrf_token` for its forms; such pages
        are always private."""
        html = self.env.get_template(name).render(
            page=page, stylesheet_url=self.stylesheet_url,
            viewer=viewer.user if viewer else None, csrf_token=viewer.csrf if viewer else "")
        private = private or viewer is not None
        all_headers = {**(NO_STORE if private else {}), **(headers or {})}
        return HTMLResponse(html, status_code=status, headers=all_headers)

    def message(self, status: int, heading: str, message: str, *, private: bool = False,
                mailto: str = "", headers: Mapping[str, str] | None = None,
                lang: str = "en") -> HTMLResponse:
        """The message page with `heading` as title; `lang` the language they are in."""
        page = MessagePage(title=heading, heading=heading, message=sentence(message),
                           mailto=mailto, lang=lang)
        return self.render("web/message.html", page, status=status, private=private,
                           headers=headers)

    def stylesheet_response(self) -> Response:
        # The URL changes with the content, so a year of caching is safe.
        return Response(self.stylesheet, media_type="text/css",
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})


def mask_email(address: str) -> str:
    """"a***@example.org": enough for its owner to recognise, little for anyone else
    who sees the page over a shoulder or in a forwarded link."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


_URL_FIRST = re.compile(r"[a-z][a-z0-9+.-]*://", re.I)


def sentence(text: str) -> str:
    """`text` with a capital first letter and a full stop, as messages from the core
    ("this link has expired; ask for a new one") are written to follow "Error: "."""
    text = text.strip()
    if not text:
        return text
    if not _URL_FIRST.match(text):  # "http://…: refused" keeps its URL as it was
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
