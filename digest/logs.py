"""What digest logs (`digest serve`, `digest worker`, every command): one format for every
logger (uvicorn's access lines too), text or JSON lines (`[logging] format`), no token in
any line, and a warning or error that repeats logged once a period.

Both rules are filters on the one handler, so they see every record that reaches it,
whichever logger made it (uvicorn, asyncio, apscheduler, digest's own).

Tokens are looked for in the percent-decoded text (uvicorn logs the request target as
the client sent it, and `/preferences/%57z...` is as good a link as `/preferences/Wz...`),
and what is found is cut from the text as logged, so a line keeps its escapes and no
decoded newline or quote gets into it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import TextIO

from digest.config import Settings
from digest.errors import ConfigError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PLACEHOLDER = "[token]"
#: A warning or error with the same text is let through once in this many seconds.
REPEAT_SECONDS = 60.0
#: Most distinct texts `ReduceRepeats` keeps counts for.
MAX_TEXTS = 1000
# Query parameters named like a credential: their value is dropped from every line.
_CREDENTIAL = re.compile(
    r"[\w.-]*(?:token|sig|signature|code|key|secret|password|passwd|auth)", re.IGNORECASE)
# A query string: what follows a "?" up to a space, quote or "#".
_QUERY = re.compile(r"\?([^\s\"'#<>]+)")
# A base64url character, and the dot between a token's parts.
_B64 = r"[A-Za-z0-9_-]"
_DOT = r"\."
# Token shapes, wherever they stand. An itsdangerous token (subscribers/tokens.py) is
# base64url payload, timestamp and signature joined by dots (a leading dot when the
# payload is compressed): the timestamp is 6 characters (4 bytes) until 2106, the
# signature 27 (HMAC-SHA1) or more; a dotted name (`a.module.name`) rarely fits. An API
# token is "dg_" and 43 (digest.users.make_token).
_SHAPES = re.compile(
    rf"(?<!{_B64}){_DOT}?{_B64}{{2,}}{_DOT}{_B64}{{5,8}}{_DOT}{_B64}{{27,}}"
    rf"|(?<![A-Za-z0-9])(?i:dg)_{_B64}{{16,}}")
# A run of base64url this long with a capital letter in it, in a path or a query, is a
# token's part (payload, signature, an API token's body), whatever separates the parts
# (`/`, `,`, `..`, a space). No route of the app has a segment like it (the only static
# file is site.css); a list name (subscribers/lists.NAME_RE) is lower case and stays
# readable. A random run of 20 lacks a capital once in 30,000; a signature (27) once in
# a million, an API token's body (43) once in 4 billion.
_RUN = re.compile(rf"(?<!{_B64})(?=[a-z0-9_-]*[A-Z]){_B64}{{20,}}(?!{_B64})")
# Where a line other than an access line may hold a path or a query: a word with a "/" or
# a "?" in it (a URL, a path, `next=%2F...`).
_URLISH = re.compile(r"[^\s\"'<>]*[/?][^\s\"'<>]*")
# A percent escape; text is decoded this many times at most, to find `%252E` (an escaped
# "%2E") too.
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
DECODE_TIMES = 3
# The end of a token in a path: the next /, ?, #, quote or space.
_TOKEN_REST = r"[^/?#&\s\"']+"
#: Loggers whose lines are requests: every query value is dropped, the names kept.
ACCESS_LOGGERS = ("uvicorn.access",)
VALUE = "[value]"


class RedactTokens(logging.Filter):
    """Takes tokens out of a record's message and traceback, whoever logged it, found in
    the text percent-decoded (`_decoded`):

    - anything shaped like a token (a signed link token, an API token), anywhere;
    - the token of every token route (`/preferences/<token>` becomes
      `/preferences/[token]`), also a forged one of no token shape;
    - any long base64url run with a capital (`_RUN`) in an access line
      (`ACCESS_LOGGERS`), or in a path or query of another line: the parts of a token
      whose dots a client replaced;
    - the value of a query parameter named like a credential, in any line; in an access
      line, every query value, so that no name a client picks and no token the shapes
      miss gets through (`?q=...` becomes `?q=[value]`).

    `routes` are path templates with a `{token}` parameter, as the app declares them
    (`token_routes`).
    """

    def __init__(self, routes: Iterable[str] = ()) -> None:
        super().__init__()
        prefixes = sorted({route.split("{token}", 1)[0] for route in routes
                           if "{token}" in route})
        alternatives = "|".join(re.escape(p) for p in prefixes)
        self._path = (re.compile(f"(?:{alternatives})(?P<token>{_TOKEN_REST})", re.IGNORECASE)
                      if prefixes else None)

    def redact(self, text: str, *, access: bool = False) -> str:
        text = self._cut(text, runs=access)
        if not access:
            text = _URLISH.sub(lambda m: self._cut(m.group(), runs=True), text)
        return _QUERY.sub(lambda m: "?" + _query(m.group(1), access), text)

    def _cut(self, text: str, *, runs: bool) -> str:
        """`text` with each secret found in its decoded form replaced, escapes and all,
        by PLACEHOLDER; with `runs`, each long base64url run too."""
        decoded, origin = _decoded(text)
        found = [m.span() for m in _SHAPES.finditer(decoded)]
        if self._path is not None:
            found += [m.span("token") for m in self._path.finditer(decoded)]
        if runs:
            found += [m.span() for m in _RUN.finditer(decoded)]
        if origin is not None:
            found = [(origin[start][0], origin[end - 1][1]) for start, end in found]
        pieces, done = [], 0
        for start, end in sorted(found):
            if end <= done:  # within a secret already cut
                continue
            if start >= done:
                pieces += [text[done:start], PLACEHOLDER]
            done = end  # an overlapping secret grows the cut
        return "".join(pieces) + text[done:] if pieces else text

    def filter(self, record: logging.LogRecord) -> bool:
        message = _message(record)
        clean = self.redact(message, access=record.name in ACCESS_LOGGERS)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatted here, so that the formatter prints the redacted text it finds.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def _decoded(text: str) -> tuple[str, list[tuple[int, int]] | None]:
    """`text` percent-decoded until it no longer changes (DECODE_TIMES at most), each
    escape as the character of its byte, and for each character of the result the span
    of `text` it comes from (None when `text` holds no escape: each its own)."""
    if "%" not in text:
        return text, None
    origin = [(i, i + 1) for i in range(len(text))]
    for _ in range(DECODE_TIMES):
        chars: list[str] = []
        spans: list[tuple[int, int]] = []
        last = 0
        for m in _ESCAPE.finditer(text):
            chars += [text[last:m.start()], chr(int(m.group(1), 16))]
            spans += [*origin[last:m.start()], (origin[m.start()][0], origin[m.end() - 1][1])]
            last = m.end()
        if not last:
            break
        text, origin = "".join(chars) + text[last:], spans + origin[last:]
    return text, origin


def _query(query: str, access: bool) -> str:
    """`query` with the value of each credential-named parameter `[token]`, and with
    `access` every other value `[value]`; names, and parameters without "=", stay."""
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and value and value != PLACEHOLDER:
            if _CREDENTIAL.fullmatch(_decoded(name)[0]):
                value = PLACEHOLDER
            elif access:
                value = VALUE
        pairs.append(name + equals + value)
    return "&".join(pairs)


class ReduceRepeats(logging.Filter):
    """Lets a warning or error through once per `period` seconds for each text (logger,
    level, message and exception); the repeats in between are counted, and the next one let through
    says how many were left out. INFO and below always pass: every access line differs.

    Why: with its open files used up, asyncio logs "socket.accept() out of system
    resource" with a traceback for every connection it fails to accept (about 6 MB a
    second under a flood of connections), filling the disk when the service is busiest.
    """

    def __init__(self, period: float = REPEAT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.period = period
        self._clock = clock
        self._lock = threading.Lock()  # handlers call filters from every thread
        # (logger, level, message) -> (when last let through, repeats left out since)
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}
        self._next_sweep = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message = _message(record)
        # The exception too: two different failures under one message both show.
        error = repr(record.exc_info[1]) if record.exc_info else ""
        key = (record.name, record.levelno, message + error)
        now = self._clock()
        with self._lock:
            self._sweep(now)
            shown, left_out = self._seen.get(key, (now - self.period, 0))
            if now - shown < self.period:
                self._seen[key] = (shown, left_out + 1)
                return False
            self._seen[key] = (now, 0)
        if left_out:
            record.msg = f"{message} ({left_out} similar messages suppressed)"
            record.args = None
        return True

    def _sweep(self, now: float) -> None:
        """Once a period, forget the texts let through over a period ago with nothing
        left out since; those with a count wait for their next repeat to report it, the
        oldest dropped beyond MAX_TEXTS (many different messages, each repeating)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.period
        kept = sorted(((shown, left_out, key) for key, (shown, left_out) in self._seen.items()
                       if left_out or now - shown < self.period), reverse=True)
        self._seen = {key: (shown, left_out) for shown, left_out, key in kept[:MAX_TEXTS]}


def _message(record: logging.LogRecord) -> str:
    """The record's text; its bare template when its arguments do not fit, which the
    handler then reports as it would without these filters."""
    try:
        return record.getMessage()
    except (TypeError, ValueError):
        return str(record.msg)


class JsonLines(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and `exc`
    with the whole traceback as one string, so that no record spans lines."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever sys.stderr is when a record comes (as logging's
    last resort does), so a command run in-process (click's CliRunner) leaves no handler
    bound to a stream closed since."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr


def configure_logging(*, token_routes: Iterable[str] = (),
                      repeat_seconds: float = REPEAT_SECONDS, fmt: str = "text",
                      level: str = "INFO", command: bool = False) -> None:
    """Every logger to stderr through the two filters, as `fmt` ("text" or "json").

    For a long-running process (`digest serve`, `digest worker`), at `level`, replacing
    any handlers the root logger had: run uvicorn with `log_config=None`, or its own
    handlers would print past them. With `command`, for the other commands, which print
    their results: WARNING and above at least, and other handlers (a test's) are kept.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"[logging] format is {fmt!r}: it must be one of "
                          f"{', '.join(FORMATS)}; set it in the config file or in "
                          "DIGEST_LOGGING_FORMAT")
    if level.upper() not in LEVELS:
        raise ConfigError(f"[logging] level is {level!r}: it must be one of "
                          f"{', '.join(LEVELS)}; set it in the config file or in "
                          "DIGEST_LOGGING_LEVEL")
    handler = _Stderr()
    handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(FORMAT))
    handler.addFilter(RedactTokens(token_routes))  # first: repeats compare redacted text
    handler.addFilter(ReduceRepeats(repeat_seconds))
    root = logging.getLogger()
    if command:
        handler.setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
        for old in [h for h in root.handlers if isinstance(h, _Stderr)]:
            root.removeHandler(old)
        root.addHandler(handler)
        return
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # APScheduler logs every run at INFO; its warnings (missed runs) still show.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def configure_from(settings: Settings, *, token_routes: Iterable[str] = (),
                   command: bool = False) -> None:
    """`configure_logging` with `[logging] format` and `level`."""
    configure_logging(token_routes=token_routes, fmt=settings["logging.format"],
                      level=settings["logging.level"], command=command)
