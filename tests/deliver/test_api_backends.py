"""Sending editions through Postmark, SendGrid and Mailgun: the real worker path (App.send)
against each provider's API on loopback (tests/fakes), checking the ledger and what the
provider received."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from digest.app import App
from digest.config import Settings
from digest.deliver.backends import make_backend
from digest.deliver.backends.http import ApiBackend
from digest.deliver.backends.mailgun import MailgunBackend
from digest.deliver.backends.postmark import PostmarkBackend
from digest.deliver.backends.sendgrid import SendGridBackend
from digest.errors import ConfigError, DeliveryError
from digest.models import Delivery
from subscribers.models import Subscriber
from subscribers.suppress import is_suppressed_address
from tests.conftest import Clock
from tests.deliver.conftest import EventLog, make_messages
from tests.deliver.test_send import _addresses, _prepare, _statuses
from tests.fakes import CLOSE, HANG, Answer, Call, FakeApi, closed_port, form_fields, json_answer
from tests.fakes.mailgun import DOMAIN, FakeMailgun
from tests.fakes.mailgun import KEY as MAILGUN_KEY
from tests.fakes.postmark import TOKEN, FakePostmark
from tests.fakes.sendgrid import KEY as SENDGRID_KEY
from tests.fakes.sendgrid import FakeSendGrid

SENDER = "news@news.example.org"


@pytest.fixture
def fakes() -> Iterator[Callable[[FakeApi], Any]]:
    started: list[FakeApi] = []

    def start(fake: FakeApi) -> Any:
        started.append(fake.start())
        return fake

    yield start
    for fake in started:
        fake.stop()


class Sleeps(list[float]):
    """The waits a backend asked for, instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(round(seconds, 3))


def _backend(kind: str, url: str, clock: Clock, **options: Any) -> ApiBackend:
    token, key = options.pop("token", TOKEN), options.pop("key", None)
    common: dict[str, Any] = {"sleep": options.pop("sleep", Sleeps()),
                              "wall": lambda: clock().timestamp(), "timeout": 5, **options}
    if kind == "postmark":
        return PostmarkBackend(url, token, **common)
    if kind == "sendgrid":
        return SendGridBackend(url, key or SENDGRID_KEY, **common)
    return MailgunBackend(url, DOMAIN, key or MAILGUN_KEY, **common)


def _fake(kind: str, sender: str = SENDER, **options: Any) -> FakeApi:
    if kind == "postmark":
        return FakePostmark(senders=(sender,), **options)
    if kind == "sendgrid":
        return FakeSendGrid(verified=(sender,), **options)
    return FakeMailgun(**options)


def _send(app: App, backend: ApiBackend, clock: Clock, **settings: Any) -> App:
    sender = App(app.settings.with_overrides(**settings), clock=clock, backend=backend)
    try:
        sender.send("daily")
    finally:
        sender.close()
    return sender


class Links:
    """Checks that a message carries its own reader's unsubscribe link."""

    def __init__(self, app: App) -> None:
        self.app = app
        with app.sessions() as s:
            self.emails = dict(s.execute(select(Subscriber.id, Subscriber.email)).all())

    def reader(self, link: str) -> str:
        token = link.rpartition("/unsubscribe/")[2]
        return str(self.emails[self.app.tokens.read(token, "unsubscribe").subscriber_id])

    def check(self, to: str, header: str, *bodies: str) -> None:
        link = header.split(">")[0].lstrip("<")
        assert self.reader(link) == to
        for body in bodies:
            assert link in body


def _message_ids(app: App, edition_id: int) -> dict[int, str]:
    with app.sessions() as s:
        return dict(s.execute(select(Delivery.id, Delivery.message_id).where(
            Delivery.edition_id == edition_id)).all())


# -- Postmark -----------------------------------------------------------------------------

def test_postmark_sends_each_reader_the_message_with_our_headers(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path
) -> None:
    fake: FakePostmark = fakes(_fake("postmark"))
    edition_id = _prepare(app, tmp_path, 5)
    _send(app, _backend("postmark", fake.url, clock), clock)

    assert set(_statuses(app, edition_id).values()) == {"sent"}
    assert len(fake.calls) == 1  # one batch
    links = Links(app)
    ids = _message_ids(app, edition_id)
    assert len(fake.accepted) == 5
    for m in fake.accepted:
        to = m["To"].rpartition("<")[2].rstrip(">")
        headers = {h["Name"]: h["Value"] for h in m["Headers"]}
        assert m["From"] == f"Daily <{SENDER}>"
        assert m["MessageStream"] == "broadcast"
        links.check(to, headers["List-Unsubscribe"], m["TextBody"], m["HtmlBody"])
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert headers["List-Id"].endswith(">") and headers["Message-ID"].startswith("<")
        assert headers["Feedback-ID"].endswith(":daily:digest:news.example.org")
        # Postmark's id is the delivery's message id, and Metadata names the delivery.
        assert ids[int(m["Metadata"]["delivery_id"])] == m["MessageID"]


def test_postmark_per_message_errors_fail_one_reader_and_inactive_is_suppressed(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path
) -> None:
    people = _addresses(4)
    fake: FakePostmark = fakes(_fake("postmark", inactive=(people[1],)))
    edition_id = _prepare(app, tmp_path, 4)
    _send(app, _backend("postmark", fake.url, clock), clock)

    status = _statuses(app, edition_id)
    assert status[people[1]].startswith("failed Postmark ErrorCode 406")
    assert [status[p] for p in people if p != people[1]] == ["sent"] * 3
    with app.sessions() as s:
        assert is_suppressed_address(s, people[1])
        assert not is_suppressed_address(s, people[0])


@pytest.mark.parametrize(("fake_options", "token", "expected"), [
    ({}, "wrong-token", "DIGEST_POSTMARK_TOKEN"),
    ({"senders": ("someone@else.example",)}, TOKEN, "Sender Signature"),
    ({"pending_approval": True}, TOKEN, "pending approval"),
])
def test_postmark_bad_token_unverified_sender_or_sandbox_stops_with_an_error(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path,
    fake_options: dict[str, Any], token: str, expected: str,
) -> None:
    fake = fakes(FakePostmark(**{"senders": (SENDER,), **fake_options}))
    edition_id = _prepare(app, tmp_path, 3)
    with pytest.raises(DeliveryError, match=expected):
        _send(app, _backend("postmark", fake.url, clock, token=token), clock)
    # Nothing went out, and nothing is lost: every reader is queued again.
    assert fake.accepted == []
    assert all(v.startswith("queued") for v in _statuses(app, edition_id).values())


# -- SendGrid -----------------------------------------------------------------------------

@pytest.mark.slow  # 10,000 readers
def test_sendgrid_10000_readers_take_10_calls_each_with_their_own_links(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path
) -> None:
    fake: FakeSendGrid = fakes(_fake("sendgrid"))
    edition_id = _prepare(app, tmp_path, 10_000)
    started = time.perf_counter()
    _send(app, _backend("sendgrid", fake.url, clock), clock)  # [delivery] batch_size 200
    print(f"sendgrid: 10,000 readers in {time.perf_counter() - started:.2f} s, "
          f"{len(fake.calls)} calls of {len(fake.calls[0].body) // 1000} KB")

    assert len(fake.calls) <= 10
    assert Counter(_statuses(app, edition_id).values()) == {"sent": 10_000}
    links = Links(app)
    assert len(fake.delivered) == 10_000
    ids = _message_ids(app, edition_id)
    for m in fake.delivered:
        links.check(m["to"][0]["email"], m["headers"]["List-Unsubscribe"], m["text"], m["html"])
        assert ids[int(m["custom_args"]["delivery_id"])] == m["x_message_id"]
    sample = fake.delivered[0]
    assert sample["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "List-Id" in sample["headers"] and sample["subject"]
    assert sample["headers"]["Feedback-ID"].endswith(":daily:digest:news.example.org")
    assert "__DIGEST_SLOT" not in sample["text"] + sample["html"]


def test_sendgrid_retries_429_and_500_honouring_retry_after_and_reset(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path
) -> None:
    fake: FakeSendGrid = fakes(_fake("sendgrid"))
    reset = int(clock().timestamp()) + 30
    fake.trouble(
        json_answer(429, {"errors": [{"message": "too many requests"}]}, **{"Retry-After": "7"}),
        json_answer(429, {"errors": [{"message": "too many requests"}]}, **{
            "X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset)}),
        Answer(500, b'{"errors":[{"message":"internal error"}]}'),
    )
    edition_id = _prepare(app, tmp_path, 3)
    sleeps = Sleeps()
    _send(app, _backend("sendgrid", fake.url, clock, sleep=sleeps), clock)

    assert set(_statuses(app, edition_id).values()) == {"sent"}
    assert len(fake.calls) == 4 and len(fake.delivered) == 3
    # Retry-After: 7 s; then until the reset time (30 s on); then backoff after the 500.
    assert sleeps == [7.0, 30.0, 4.0]


@pytest.mark.parametrize("kind", ["postmark", "mailgun"])
def test_429_without_retry_after_backs_off_and_an_http_date_is_honoured(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path, kind: str
) -> None:
    fake = fakes(_fake(kind))
    later = format_datetime(clock() + dt.timedelta(seconds=12), usegmt=True)
    fake.trouble(Answer(429, b""), Answer(503, b"", {"Retry-After": later}))
    edition_id = _prepare(app, tmp_path, 2)
    sleeps = Sleeps()
    _send(app, _backend(kind, fake.url, clock, sleep=sleeps), clock)

    assert set(_statuses(app, edition_id).values()) == {"sent"}
    assert sleeps == [1.0, 12.0]  # backoff after the bare 429; the date after the 503
    handed = Counter(d for call in fake.calls for d in _deliveries_in(kind, call))
    assert len(handed) == 2


def test_sendgrid_persistent_500_leaves_messages_queued_with_an_error(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path
) -> None:
    fake: FakeSendGrid = fakes(_fake("sendgrid"))
    fake.trouble(*[Answer(503, b"")] * 4)
    edition_id = _prepare(app, tmp_path, 3)
    sleeps = Sleeps()
    with pytest.raises(DeliveryError, match="HTTP 503 4 times"):
        _send(app, _backend("sendgrid", fake.url, clock, sleep=sleeps), clock)
    assert sleeps == [1.0, 2.0, 4.0]
    assert all(v.startswith("queued") for v in _statuses(app, edition_id).values())


def test_sendgrid_400_naming_one_reader_fails_that_reader_and_defers_the_call(
    fakes: Callable[[FakeApi], Any], clock: Clock
) -> None:
    """SendGrid refuses a whole call for one bad personalization (here an address given
    twice): that reader fails, the others were not sent and are deferred, not lost."""
    fake: FakeSendGrid = fakes(FakeSendGrid(verified=("news@example.org",)))
    batch = make_messages(3, addresses=["a@example.com", "b@example.com", "a@example.com"])
    events = EventLog()
    results = _backend("sendgrid", fake.url, clock).send(batch, events)
    events.check()
    assert [r.status for r in results] == ["deferred", "deferred", "failed"]
    assert "unique" in results[2].detail
    assert fake.delivered == []


@pytest.mark.parametrize(("key", "verified", "expected"), [
    ("SG.wrong", (SENDER,), "DIGEST_SENDGRID_API_KEY"),
    (SENDGRID_KEY, ("other@example.org",), "verified Sender Identity"),
])
def test_sendgrid_bad_key_or_unverified_sender_stops_with_an_error(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path,
    key: str, verified: tuple[str, ...], expected: str,
) -> None:
    fake: FakeSendGrid = fakes(FakeSendGrid(verified=verified))
    edition_id = _prepare(app, tmp_path, 2)
    with pytest.raises(DeliveryError, match=expected):
        _send(app, _backend("sendgrid", fake.url, clock, key=key), clock)
    assert fake.delivered == []
    assert all(v.startswith("queued") for v in _statuses(app, edition_id).values())


# -- Mailgun ------------------------------------------------------------------------------

def test_mailgun_gets_our_mime_message_unchanged(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path
) -> None:
    fake: FakeMailgun = fakes(_fake("mailgun"))
    edition_id = _prepare(app, tmp_path, 3)
    _send(app, _backend("mailgun", fake.url, clock), clock)

    assert set(_statuses(app, edition_id).values()) == {"sent"}
    links = Links(app)
    ids = _message_ids(app, edition_id)
    assert len(fake.received) == 3
    for got in fake.received:
        msg = message_from_bytes(got["mime"], policy=policy.default)
        (to,) = got["to"]
        assert msg["To"].addresses[0].addr_spec == to
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["Feedback-ID"].endswith(":daily:digest:news.example.org")
        text = msg.get_body(("plain",))
        page = msg.get_body(("html",))
        assert text is not None and page is not None
        links.check(to, msg["List-Unsubscribe"], text.get_content(), page.get_content())
        # Mailgun's id is our Message-ID; v:delivery_id names the delivery.
        assert ids[int(got["vars"]["delivery_id"])] == msg["Message-ID"]


@pytest.mark.parametrize(("fake_options", "key", "expected"), [
    ({}, "key-wrong", "DIGEST_MAILGUN_API_KEY"),
    ({"domains": ("other.example.org",)}, MAILGUN_KEY, r"\[mailgun\] domain"),
    ({"domains": (), "sandbox": {DOMAIN: ("boss@example.org",)}}, MAILGUN_KEY, "sandbox"),
])
def test_mailgun_bad_key_unknown_domain_or_sandbox_stops_with_an_error(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path,
    fake_options: dict[str, Any], key: str, expected: str,
) -> None:
    fake: FakeMailgun = fakes(FakeMailgun(**fake_options))
    edition_id = _prepare(app, tmp_path, 3)
    with pytest.raises(DeliveryError, match=expected):
        _send(app, _backend("mailgun", fake.url, clock, key=key), clock)
    assert fake.received == []
    assert all(v.startswith("queued") for v in _statuses(app, edition_id).values())


# -- what "handed over" means, for every provider -----------------------------------------

@pytest.mark.parametrize("kind", ["postmark", "sendgrid", "mailgun"])
@pytest.mark.parametrize("trouble", [HANG, CLOSE])
def test_a_request_without_an_answer_leaves_uncertain_rows_never_sent_again(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path,
    kind: str, trouble: str,
) -> None:
    """The request was written, then the provider never answered (or closed the
    connection): it may have queued the messages, so their rows are uncertain, and later
    runs do not send them again."""
    fake = fakes(_fake(kind))
    fake.trouble(trouble)
    edition_id = _prepare(app, tmp_path, 3)
    backend = _backend(kind, fake.url, clock, timeout=2.0)  # a loaded CI machine answers late
    _send(app, backend, clock)
    clock.advance(days=1)
    _send(app, backend, clock)

    status = _statuses(app, edition_id)
    uncertain = [a for a, s in status.items() if s.startswith("uncertain")]
    # A batch API loses the whole call; Mailgun, one message per call, loses one.
    assert len(uncertain) == (1 if kind == "mailgun" else 3), status
    assert all("may have accepted" in status[a] for a in uncertain)
    assert Counter(status.values())["sent"] == 3 - len(uncertain)
    handed = Counter(d for call in fake.calls for d in _deliveries_in(kind, call))
    assert len(handed) == 3 and set(handed.values()) == {1}, "a message was sent twice"


def _deliveries_in(kind: str, call: Call) -> list[str]:
    """The delivery ids a request carried."""
    if kind == "postmark":
        return [m["Metadata"]["delivery_id"] for m in call.json()]
    if kind == "sendgrid":
        return [p["custom_args"]["delivery_id"] for p in call.json()["personalizations"]]
    return [v.decode() for n, v, _ in form_fields(call) if n == "v:delivery_id"]


@pytest.mark.parametrize("kind", ["postmark", "sendgrid", "mailgun"])
def test_a_refused_connection_defers_everything_with_an_error(
    app: App, clock: Clock, tmp_path: Path, kind: str
) -> None:
    edition_id = _prepare(app, tmp_path, 3)
    sleeps = Sleeps()
    backend = _backend(kind, f"http://127.0.0.1:{closed_port()}", clock, sleep=sleeps)
    with pytest.raises(DeliveryError, match="Nothing was lost"):
        _send(app, backend, clock)
    assert sleeps == [1.0, 2.0, 4.0]  # tried 4 times
    status = _statuses(app, edition_id)
    assert all(v.startswith("queued") for v in status.values()), status
    # The call's messages carry the reason; Mailgun's others were never attempted.
    refused = [v for v in status.values() if v == "queued not sent: connection refused"]
    assert len(refused) == (1 if kind == "mailgun" else 3), status


def test_rate_limit_spaces_messages(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path
) -> None:
    fake = fakes(_fake("mailgun"))
    _prepare(app, tmp_path, 5)
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    backend = _backend("mailgun", fake.url, clock, rate_limit=2.0, sleep=sleep,
                       monotonic=lambda: now[0])
    _send(app, backend, clock)
    assert len(fake.received) == 5
    assert sum(sleeps) == pytest.approx(2.0)  # 5 messages at 2/s: the last at 2 s


# -- settings -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["smtp", "postmark", "sendgrid", "mailgun"])
@pytest.mark.parametrize(("shared", "own", "expected"),
                         [(5.0, 0.0, 5.0), (0.0, 3.0, 3.0), (5.0, 3.0, 3.0), (2.0, 3.0, 2.0),
                          (0.0, 0.0, 0.0)])
def test_delivery_rate_limit_caps_every_backend(settings: Settings, kind: str, shared: float,
                                                own: float, expected: float) -> None:
    """`[delivery] rate_limit` holds whichever backend sends; a backend's own rate_limit
    may only be lower (the provider's or the relay's limit)."""
    env = {"DIGEST_POSTMARK_TOKEN": "t", "DIGEST_SENDGRID_API_KEY": "k",
           "DIGEST_MAILGUN_API_KEY": "m"}
    backend = make_backend(dataclasses.replace(settings, env=env).with_overrides(**{
        "delivery__backend": kind, "delivery__rate_limit": shared, f"{kind}__rate_limit": own,
        "mailgun__domain": DOMAIN}))
    assert backend.limiter.rate == expected  # type: ignore[attr-defined]


def test_make_backend_reads_each_providers_settings_and_secret(settings: Settings) -> None:
    env = {"DIGEST_POSTMARK_TOKEN": "t", "DIGEST_SENDGRID_API_KEY": "k",
           "DIGEST_MAILGUN_API_KEY": "m"}
    with_env = dataclasses.replace(settings, env=env)
    postmark = make_backend(with_env.with_overrides(delivery__backend="postmark",
                                                    postmark__message_stream="news"))
    assert isinstance(postmark, PostmarkBackend) and postmark.message_stream == "news"
    mailgun = make_backend(with_env.with_overrides(
        delivery__backend="mailgun", mailgun__domain=DOMAIN,
        mailgun__api_url="https://api.eu.mailgun.net"))
    assert isinstance(mailgun, MailgunBackend) and mailgun.api_url == "https://api.eu.mailgun.net"
    assert isinstance(make_backend(with_env.with_overrides(delivery__backend="sendgrid")),
                      SendGridBackend)
    for kind, var in [("postmark", "DIGEST_POSTMARK_TOKEN"),
                      ("sendgrid", "DIGEST_SENDGRID_API_KEY"),
                      ("mailgun", "DIGEST_MAILGUN_API_KEY")]:
        with pytest.raises(ConfigError, match=var):
            make_backend(settings.with_overrides(delivery__backend=kind, mailgun__domain="x"))
    with pytest.raises(ConfigError, match=r"\[mailgun\] domain"):
        make_backend(with_env.with_overrides(delivery__backend="mailgun"))


# -- what an answer means for the ledger (the attack of issue 12) ---------------------------

@pytest.mark.parametrize(("answer", "mangle", "uncertain"), [
    (Answer(200, b"<html>OK</html>"), None, 4),  # not JSON
    (json_answer(200, {"Message": "OK"}), None, 4),  # JSON, not a list
    (None, lambda results: results[:2], 2),  # two results missing
    (None, lambda results: results + results[:1], 0),  # one result too many
])
def test_a_postmark_200_that_does_not_settle_every_message_leaves_them_uncertain(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path,
    answer: Answer | None, mangle: Callable[[list[Any]], Any] | None, uncertain: int,
) -> None:
    """A 200 means Postmark took the batch: a message its answer does not settle is
    uncertain, never queued again, so the next run does not mail that reader twice."""
    fake: FakePostmark = fakes(FakePostmark(senders=(SENDER,), mangle=mangle))
    if answer is not None:
        fake.trouble(answer)
    edition_id = _prepare(app, tmp_path, 4)
    backend = _backend("postmark", fake.url, clock)
    if uncertain:
        with pytest.raises(DeliveryError, match=f"{uncertain} of its 4 messages are marked "
                                                "uncertain"):
            _send(app, backend, clock)
    else:
        _send(app, backend, clock)
    clock.advance(days=1)
    _send(app, backend, clock)

    status = Counter(s.split()[0] for s in _statuses(app, edition_id).values())
    assert status == +Counter({"uncertain": uncertain, "sent": 4 - uncertain})
    handed = Counter(d for call in fake.calls for d in _deliveries_in("postmark", call))
    assert len(handed) == 4 and set(handed.values()) == {1}, "a reader was mailed twice"


def test_postmark_results_are_matched_by_address_not_position(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path
) -> None:
    people = _addresses(4)
    fake: FakePostmark = fakes(FakePostmark(senders=(SENDER,), inactive=(people[1],),
                                            mangle=lambda results: results[::-1]))
    edition_id = _prepare(app, tmp_path, 4)
    _send(app, _backend("postmark", fake.url, clock), clock)

    status = _statuses(app, edition_id)
    assert status[people[1]].startswith("failed Postmark ErrorCode 406")
    assert [status[p] for p in people if p != people[1]] == ["sent"] * 3
    with app.sessions() as s:
        assert [p for p in people if is_suppressed_address(s, p)] == [people[1]]
    ids = _message_ids(app, edition_id)
    for m in fake.accepted:
        assert ids[int(m["Metadata"]["delivery_id"])] == m["MessageID"]


@pytest.mark.parametrize("kind", ["postmark", "sendgrid", "mailgun"])
def test_a_2xx_without_the_usual_body_never_queues_the_call_again(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path, kind: str
) -> None:
    """Any 2xx took the call: its messages are sent or uncertain, never queued."""
    fake = fakes(_fake(kind))
    fake.trouble(*[Answer(201, b"")] * 3)
    edition_id = _prepare(app, tmp_path, 3)
    with contextlib.suppress(DeliveryError):
        _send(app, _backend(kind, fake.url, clock), clock)
    assert not [v for v in _statuses(app, edition_id).values() if v.startswith("queued")]


def _rows(app: App, edition_id: int) -> Counter[str]:
    with app.sessions() as s:
        return Counter(s.scalars(select(Delivery.status).where(
            Delivery.edition_id == edition_id)).all())


@pytest.mark.parametrize("kind", ["postmark", "sendgrid", "mailgun"])
@pytest.mark.parametrize("status", [429, 503])
def test_while_waiting_to_retry_no_row_is_sending_and_stop_gives_the_batch_back(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path,
    kind: str, status: int,
) -> None:
    """The provider took none of the call: during the wait its rows are the worker's
    claims (a kill then leaves nothing uncertain), and a stop (SIGTERM) ends the wait
    and gives the batch back to the queue."""
    fake = fakes(_fake(kind))
    fake.trouble(Answer(status, b"", {"Retry-After": "60"}))
    edition_id = _prepare(app, tmp_path, 3)
    stop = threading.Event()
    during: list[Counter[str]] = []

    def sleep(seconds: float) -> None:
        during.append(_rows(app, edition_id))
        stop.set()

    sender = App(app.settings, clock=clock, backend=_backend(kind, fake.url, clock, sleep=sleep))
    try:
        sender.send("daily", stop=stop)
    finally:
        sender.close()
    assert during and "sending" not in during[0] and during[0]["claimed"] >= 1
    assert _rows(app, edition_id) == {"queued": 3}
    assert len(fake.calls) == 1  # no second try after the stop


@pytest.mark.parametrize("kind", ["postmark", "sendgrid", "mailgun"])
def test_after_a_429_the_batch_is_handed_over_again_and_sent_once(
    fakes: Callable[[FakeApi], Any], clock: Clock, kind: str
) -> None:
    fake = fakes(_fake(kind, sender="news@example.org"))
    fake.trouble(Answer(429, b"", {"Retry-After": "5"}))
    batch = make_messages(1 if kind == "mailgun" else 2)
    events = EventLog()
    sleeps = Sleeps()
    results = _backend(kind, fake.url, clock, sleep=sleeps).send(batch, events)
    events.check()
    assert [r.status for r in results] == ["sent"] * len(batch)
    assert sleeps == [5.0]
    first = batch[0].delivery_id
    assert [k for k, i in events.calls if i == first] == [
        "handing_over", "taken_back", "handing_over", "done"]


@pytest.mark.parametrize(("kind", "trouble", "said"), [
    ("postmark", {"Retry-After": "999999"}, r"wait 12 days \(Retry-After: 999999\)"),
    ("mailgun", {"Retry-After": "999999"}, r"wait 12 days \(Retry-After: 999999\)"),
    ("sendgrid", {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "RESET"},
     r"wait 116 days \(X-RateLimit-Reset: \d+\)"),
])
def test_a_wait_longer_than_max_wait_queues_the_batch_for_then_and_says_so(
    app: App, fakes: Callable[[FakeApi], Any], clock: Clock, tmp_path: Path,
    kind: str, trouble: dict[str, str], said: str,
) -> None:
    fake = fakes(_fake(kind))
    asked = 999_999 if "Retry-After" in trouble else 10_000_000
    headers = {k: v.replace("RESET", str(int(clock().timestamp()) + asked))
               for k, v in trouble.items()}
    fake.trouble(Answer(429, b"", headers))
    edition_id = _prepare(app, tmp_path, 2)
    sleeps = Sleeps()
    with pytest.raises(DeliveryError, match=said + ".* queued again for"):
        _send(app, _backend(kind, fake.url, clock, sleep=sleeps), clock)
    assert sleeps == []  # no hanging
    assert _rows(app, edition_id) == {"queued": 2}
    with app.sessions() as s:
        due = s.scalars(select(Delivery.next_attempt_at).where(
            Delivery.edition_id == edition_id, Delivery.attempts > 0)).all()
    assert due and all(abs((d.replace(tzinfo=dt.UTC) - clock()).total_seconds() - asked) < 2
                       for d in due)
