"""The SES backend against moto's server: a real emulator of the SES API on loopback,
started by the tests (moto.server.ThreadedMotoServer), driven through boto3.

What moto cannot be made to do (throttle, time out, reject one reader, sandbox) comes
from `SesGate`, a loopback HTTP server in front of moto that answers chosen requests
itself, in the shapes of the SESv2 API reference (errors of SendEmail: 429
TooManyRequestsException, 400 MessageRejected with `x-amzn-ErrorType` and a JSON
`message`; https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html,
https://docs.aws.amazon.com/ses/latest/APIReference-V2/CommonErrors.html), and passes
every other request on to moto.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import http.server
import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer
from moto.ses.models import ses_backends
from sqlalchemy import select

from digest.app import App
from digest.config import Settings
from digest.deliver.backends import make_backend
from digest.deliver.backends.ses import MAX_BACKOFF, SesBackend
from digest.errors import DeliveryError
from digest.models import Delivery, DeliveryStatus
from subscribers.models import Subscriber
from tests.conftest import Clock
from tests.deliver.test_send import _addresses, _prepare

REGION = "us-east-1"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

pytestmark = pytest.mark.filterwarnings(
    # moto's server (Flask/werkzeug) and botocore use datetime.utcnow on some paths.
    "ignore::DeprecationWarning",
)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto(moto_url: str) -> str:
    """moto's server, emptied: no verified identity, no message sent."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    return moto_url


def verify_sender(url: str, domain: str = "news.example.org") -> None:
    boto3.client("ses", region_name=REGION, endpoint_url=url, **KEYS) \
        .verify_domain_identity(Domain=domain)


def readers(raw: Any) -> set[str]:
    """The addresses a message moto took went to (it lists "Name <address>" too)."""
    return {email.utils.parseaddr(d)[1] for d in raw.destinations}


def sent_by_moto() -> list[Any]:
    """What moto's SES took, read from its store (the server runs in this process)."""
    return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)


class VirtualTime:
    """A monotonic clock that only sleeping moves: the rate limiter and the backoff run
    at full speed, and `slept` tells how long they would have waited."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.lock = threading.Lock()

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds
            self.slept.append(seconds)


def ses_backend(url: str, time: VirtualTime, **options: Any) -> SesBackend:
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=2,
                    read_timeout=options.pop("timeout", 5), max_pool_connections=10)
    v2 = boto3.client("sesv2", region_name=REGION, endpoint_url=url, config=config, **KEYS)
    v1 = boto3.client("ses", region_name=REGION, endpoint_url=url, config=config, **KEYS)
    return SesBackend(v2, v1, clock=time.clock, sleep=time.sleep, **options)


def statuses(app: App) -> dict[str, tuple[str, str, str]]:
    """Each reader's delivery: (status, last_error, message_id)."""
    with app.sessions() as s:
        rows = s.execute(select(Subscriber.email, Delivery.status, Delivery.last_error,
                                Delivery.message_id)
                         .join(Subscriber, Subscriber.id == Delivery.subscriber_id)).all()
    return {e: (st, err, mid) for e, st, err, mid in rows}


# -- a gate in front of moto ---------------------------------------------------------

Answer = tuple[int, dict[str, str], bytes] | str  # a response, or "forward"/"hang"/"drop"


class SesGate:
    """A loopback HTTP server that answers SendEmail calls as `script(n, body)` says
    (n counts SendEmail calls from 1) and forwards everything else, and "forward", to
    moto. It counts the SendEmail calls it saw."""

    def __init__(self, upstream: str, script: Callable[[int, dict[str, Any]], Answer]) -> None:
        self.upstream, self.script = upstream, script
        self.calls = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer: Answer = "forward"
                if self.path == "/v2/email/outbound-emails":
                    with gate.lock:
                        gate.calls += 1
                        n = gate.calls
                    answer = gate.script(n, json.loads(body))
                if answer == "hang":
                    gate.release.wait(10)
                    return
                if answer == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if answer == "forward":
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    up = requests.post(gate.upstream + self.path, data=body, headers=headers,
                                       timeout=10)
                    answer = (up.status_code, {"Content-Type": up.headers.get(
                        "Content-Type", "application/json")}, up.content)
                assert not isinstance(answer, str)
                status, headers, payload = answer
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(payload))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    """An SESv2 error answer (REST-JSON: the code in x-amzn-ErrorType)."""
    return (status, {"Content-Type": "application/json", "x-amzn-ErrorType": code},
            json.dumps({"message": message}).encode())


@pytest.fixture
def gate(moto: str) -> Iterator[Callable[..., SesGate]]:
    made: list[SesGate] = []

    def start(script: Callable[[int, dict[str, Any]], Answer]) -> SesGate:
        made.append(SesGate(moto, script))
        return made[-1]

    yield start
    for g in made:
        g.stop()


# -- the tests ---------------------------------------------------------------------


@pytest.mark.slow
def test_two_thousand_readers_through_moto_each_with_our_headers_and_ses_message_id(
    app: App, moto: str, clock: Clock, tmp_path: Path
) -> None:
    """The acceptance test: 2,000 readers through the worker path; every delivery in the
    ledger as sent with SES's MessageId, and every raw message moto took carries our
    headers and both parts, one per reader, at no more than the account's rate."""
    total = 2000
    verify_sender(moto)
    _prepare(app, tmp_path, total)
    time = VirtualTime()
    backend = ses_backend(moto, time)
    # How moto answered each SendEmail call.
    answers: list[int] = []
    backend.client.meta.events.register(
        "after-call.sesv2.SendEmail",
        lambda http_response, **_: answers.append(http_response.status_code))
    sender = App(app.settings, clock=clock, backend=backend)
    try:
        report = sender.send("daily")
    finally:
        sender.close()
    assert report is not None and report.finished

    ledger = statuses(app)
    assert sorted(ledger) == _addresses(total)
    assert {st for st, _, _ in ledger.values()} == {DeliveryStatus.DELIVERED}
    sent = sent_by_moto()
    assert len(sent) == total
    by_id = {m.id: m for m in sent}
    # Every delivery's message_id is the MessageId SES answered for its message.
    assert {mid for _, _, mid in ledger.values()} == set(by_id)
    for address, (_, _, mid) in ledger.items():
        raw = by_id[mid]
        assert readers(raw) == {address}
        msg = email.message_from_string(raw.raw_data, policy=email.policy.default)
        assert msg["To"].addresses[0].addr_spec == address
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "https://news.example.org/" in msg["List-Unsubscribe"]
        assert msg["List-Id"].endswith(">")
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    # moto's account allows 1 message a second (GetSendQuota): 2,000 take 1,999 s. A
    # call moto answers with an error (a 5xx when the machine is loaded) is tried again
    # after a backoff, which adds its wait.
    assert backend.account_rate == 1.0
    assert answers.count(200) == total
    again = len(answers) - total
    assert total - 1 <= time.now <= total - 1 + again * MAX_BACKOFF + 1e-9
    if not again:
        assert time.now == pytest.approx(total - 1)


def test_an_unverified_sender_stops_the_run_with_what_to_do(
    app: App, moto: str, clock: Clock, tmp_path: Path
) -> None:
    _prepare(app, tmp_path, 5)  # news.example.org is not verified in moto
    sender = App(app.settings, clock=clock, backend=ses_backend(moto, VirtualTime()))
    try:
        with pytest.raises(DeliveryError) as caught:
            sender.send("daily")
    finally:
        sender.close()
    text = str(caught.value)
    assert "news@news.example.org" in text and "Verify the domain news.example.org" in text
    assert sent_by_moto() == []
    # No reader is blamed: nothing failed or went out, all wait to be sent.
    assert {st for st, _, _ in statuses(app).values()} <= {DeliveryStatus.QUEUED}


def test_throttled_calls_are_retried_with_backoff_and_each_reader_gets_one(
    app: App, gate: Callable[..., SesGate], moto: str, clock: Clock, tmp_path: Path
) -> None:
    verify_sender(moto)
    _prepare(app, tmp_path, 20)

    def script(n: int, body: dict[str, Any]) -> Answer:
        if n in (2, 3, 4):  # three answers "too fast" in a row, then SES takes them
            return error(429, "TooManyRequestsException", "Maximum sending rate exceeded.")
        return "forward"

    front = gate(script)
    time = VirtualTime()
    sender = App(app.settings, clock=clock, backend=ses_backend(front.url, time,
                                                                 concurrency=1))
    try:
        report = sender.send("daily")
    finally:
        sender.close()
    assert report is not None and report.finished
    ledger = statuses(app)
    assert {st for st, _, _ in ledger.values()} == {DeliveryStatus.DELIVERED}
    assert front.calls == 23
    assert Counter(a for m in sent_by_moto() for a in readers(m)) == Counter(
        _addresses(20))
    # The backoff between the tries: 1, 2 and 4 s (beside the rate limiter's pauses of
    # at most 1 s, moto's account rate).
    assert [s for s in time.slept if s > 1] == [2.0, 4.0], time.slept


def test_a_reader_rejected_fails_alone_and_a_sandboxed_account_stops_the_run(
    app: App, gate: Callable[..., SesGate], moto: str, clock: Clock, tmp_path: Path
) -> None:
    verify_sender(moto)
    people = _addresses(6)
    _prepare(app, tmp_path, 6)

    def script(n: int, body: dict[str, Any]) -> Answer:
        to = body["Destination"]["ToAddresses"][0]
        if to == people[1]:
            return error(400, "MessageRejected", "Illegal address")
        if to == people[4]:
            return error(400, "MessageRejected",
                         "Email address is not verified. The following identities failed "
                         f"the check in region US-EAST-1: {to}")
        return "forward"

    front = gate(script)
    sender = App(app.settings, clock=clock, backend=ses_backend(front.url, VirtualTime(),
                                                                 concurrency=1))
    try:
        with pytest.raises(DeliveryError, match=r"sandbox.*Request production access"):
            sender.send("daily")
    finally:
        sender.close()
    ledger = statuses(app)
    assert ledger[people[1]][:2] == (DeliveryStatus.FAILED, "MessageRejected: Illegal address")
    assert ledger[people[0]][0] == ledger[people[2]][0] == DeliveryStatus.DELIVERED
    assert ledger[people[4]][0] == DeliveryStatus.QUEUED  # not the reader's fault
    assert ledger[people[5]][0] == DeliveryStatus.QUEUED  # never tried
    assert sorted(a for m in sent_by_moto() for a in readers(m)) == sorted(
        [people[0], people[2], people[3]])


def test_no_answer_after_the_request_is_uncertain_never_sent_again(
    app: App, gate: Callable[..., SesGate], moto: str, clock: Clock, tmp_path: Path
) -> None:
    verify_sender(moto)
    people = _addresses(4)
    _prepare(app, tmp_path, 4)

    def script(n: int, body: dict[str, Any]) -> Answer:
        to = body["Destination"]["ToAddresses"][0]
        return {people[1]: "hang", people[2]: "drop"}.get(to, "forward")

    front = gate(script)
    sender = App(app.settings, clock=clock,
                 backend=ses_backend(front.url, VirtualTime(), concurrency=1, timeout=1))
    try:
        sender.send("daily")
    finally:
        sender.close()
    ledger = statuses(app)
    assert ledger[people[1]][0] == DeliveryStatus.UNCERTAIN
    assert ledger[people[2]][0] == DeliveryStatus.UNCERTAIN
    assert {ledger[people[0]][0], ledger[people[3]][0]} == {DeliveryStatus.DELIVERED}



def test_refused_connection_defers_the_batch(
    app: App, moto: str, clock: Clock, tmp_path: Path
) -> None:
    """Nothing listens at the endpoint: no message left, so all wait for a retry."""
    _prepare(app, tmp_path, 3)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    sender = App(app.settings, clock=clock, backend=ses_backend(closed, VirtualTime()))
    try:
        report = sender.send("daily")
    finally:
        sender.close()
    assert report is not None and not report.finished
    ledger = statuses(app)
    assert {st for st, _, _ in ledger.values()} == {DeliveryStatus.QUEUED}
    assert all("cannot reach" in err or "Could not connect" in err
               for _, err, _ in ledger.values()), ledger


def test_settings_choose_ses_with_the_standard_aws_credentials(
    settings: Settings, moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    chosen = settings.with_overrides(delivery__backend="ses", ses__region="eu-west-1",
                                     ses__endpoint_url=moto, ses__configuration_set="news")
    backend = make_backend(chosen)
    try:
        assert isinstance(backend, SesBackend)
        assert backend.client.meta.region_name == "eu-west-1"
        assert backend.client.meta.endpoint_url == moto
        assert backend.configuration_set == "news"
    finally:
        backend.close()


def test_while_ses_is_throttling_no_row_is_sending_and_a_stop_gives_the_batch_back(
    app: App, gate: Callable[..., SesGate], moto: str, clock: Clock, tmp_path: Path
) -> None:
    """SES took none of a throttled call: during the backoff its row is the worker's
    claim (a kill then leaves nothing uncertain), and a stop (SIGTERM) during the wait
    gives every unsent message back to the queue."""
    verify_sender(moto)
    _prepare(app, tmp_path, 3)
    throttled = threading.Event()
    stop = threading.Event()
    during: list[set[str]] = []

    def script(n: int, body: dict[str, Any]) -> Answer:
        throttled.set()
        return error(429, "TooManyRequestsException", "Maximum sending rate exceeded.")

    class Watching(VirtualTime):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if throttled.is_set() and not stop.is_set():
                during.append({st for st, _, _ in statuses(app).values()})
                stop.set()

    front = gate(script)
    sender = App(app.settings, clock=clock, backend=ses_backend(front.url, Watching(),
                                                                 concurrency=1))
    try:
        sender.send("daily", stop=stop)
    finally:
        sender.close()
    assert during == [{DeliveryStatus.CLAIMED}]
    assert {st for st, _, _ in statuses(app).values()} == {DeliveryStatus.QUEUED}
    assert front.calls == 1 and sent_by_moto() == []
