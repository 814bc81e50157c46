"""The SMTP backend against a real aiosmtpd server on loopback."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.config import defaults
from digest.deliver.backends import (
    OutboxBackend,
    RateLimiter,
    SendResult,
    SmtpBackend,
    make_backend,
)
from digest.deliver.backends.smtp import _dot_stuffed
from digest.deliver.message import Outgoing
from digest.errors import ConfigError, DeliveryError
from tests.deliver.conftest import EventLog, SmtpSink, TlsFiles, make_messages

Factory = Callable[..., SmtpSink]


@pytest.fixture
def backends() -> Iterator[Callable[..., SmtpBackend]]:
    """Makes SmtpBackends for a sink (tls "none" unless told) and closes them afterwards,
    before the sink stops."""
    made: list[SmtpBackend] = []

    def make(sink: SmtpSink, **options: Any) -> SmtpBackend:
        options.setdefault("tls", "none")
        options.setdefault("timeout", 5.0)
        backend = SmtpBackend(sink.host, sink.port, **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def send(backend: SmtpBackend, batch: list[Outgoing]) -> tuple[dict[int, SendResult], EventLog]:
    events = EventLog()
    results = backend.send(batch, events)
    events.check()
    assert sorted(events.results, key=lambda r: r.delivery_id) == sorted(
        results, key=lambda r: r.delivery_id
    )
    assert [r.delivery_id for r in results] == [m.delivery_id for m in batch]
    return {r.delivery_id: r for r in results}, events


def statuses(results: dict[int, SendResult]) -> dict[int, str]:
    return {i: r.status for i, r in results.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("pipelining", [True, False])
def test_fifty_messages_over_four_connections_arrive_once(
    smtp_server: Factory, backends: Callable[..., SmtpBackend], pipelining: bool
) -> None:
    sink = smtp_server(pipelining=pipelining)
    backend = backends(sink, connections=4)
    batch = make_messages(50)
    results, _ = send(backend, batch)

    assert set(statuses(results).values()) == {"sent"}
    received = sink.messages
    assert Counter(m.rcpt_tos for m in received) == Counter((m.recipient,) for m in batch)
    assert {m.mail_from for m in received} == {"news@example.org"}
    # Dot-stuffing undone by the server gives back exactly the bytes built.
    assert sorted(m.data for m in received) == sorted(m.data for m in batch)
    assert 1 < sink.connections <= 4

    # The connections stay open for the next call.
    send(backend, make_messages(20, first_id=100))
    assert len(sink.messages) == 70
    assert sink.connections <= 4


@pytest.mark.parametrize("pipelining", [True, False])
def test_rejected_recipients_fail_with_the_reply_others_are_sent(
    smtp_server: Factory, backends: Callable[..., SmtpBackend], pipelining: bool
) -> None:
    sink = smtp_server(reject={"r3@example.com", "r7@example.com"}, pipelining=pipelining)
    results, _ = send(backends(sink, connections=2), make_messages(10))
    assert {i for i, r in results.items() if r.status == "failed"} == {3, 7}
    assert results[3].detail == "550 5.1.1 no such user"
    assert {i for i, r in results.items() if r.status == "sent"} == set(range(1, 11)) - {3, 7}
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(
        f"r{i}@example.com" for i in range(1, 11) if i not in (3, 7)
    )


@pytest.mark.parametrize("pipelining", [True, False])
def test_temporary_failure_is_deferred_then_sent_on_the_next_call(
    smtp_server: Factory, backends: Callable[..., SmtpBackend], pipelining: bool
) -> None:
    sink = smtp_server(tempfail={"r2@example.com": 1}, pipelining=pipelining)
    backend = backends(sink, connections=1)
    batch = make_messages(3)
    results, _ = send(backend, batch)
    assert statuses(results) == {1: "sent", 2: "deferred", 3: "sent"}
    assert results[2].detail.startswith("451 4.7.1")

    results, _ = send(backend, [batch[1]])
    assert statuses(results) == {2: "sent"}
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == [
        "r1@example.com", "r2@example.com", "r3@example.com",
    ]


def test_421_defers_the_rest_and_the_next_call_reconnects(
    smtp_server: Factory, backends: Callable[..., SmtpBackend]
) -> None:
    sink = smtp_server(close_on_mail={3})
    backend = backends(sink, connections=1)
    batch = make_messages(6)
    results, _ = send(backend, batch)
    assert statuses(results) == {1: "sent", 2: "sent", 3: "deferred", 4: "deferred",
                                 5: "deferred", 6: "deferred"}
    assert results[3].detail.startswith("421 4.3.2")
    assert "421 4.3.2" in results[5].detail and results[5].detail.startswith("not sent")

    results, _ = send(backend, batch[2:])
    assert set(statuses(results).values()) == {"sent"}
    assert len(sink.messages) == 6
    assert sink.connections == 2


def test_421_on_one_of_four_connections_leaves_the_rest_to_the_others(
    smtp_server: Factory, backends: Callable[..., SmtpBackend]
) -> None:
    sink = smtp_server(close_on_mail={5})
    results, _ = send(backends(sink, connections=4), make_messages(40))
    assert Counter(r.status for r in results.values()) == {"sent": 39, "deferred": 1}
    assert len(sink.messages) == 39


def test_a_connection_closed_while_idle_is_reopened_without_losing_a_message(
    smtp_server: Factory, backends: Callable[..., SmtpBackend]
) -> None:
    sink = smtp_server()
    backend = backends(sink, connections=2)
    send(backend, make_messages(4))
    sink.disconnect_all()
    results, _ = send(backend, make_messages(4, first_id=10))
    assert set(statuses(results).values()) == {"sent"}
    assert len(sink.messages) == 8


def test_connection_lost_before_the_final_reply_is_uncertain_never_retried(
    smtp_server: Factory, backends: Callable[..., SmtpBackend]
) -> None:
    sink = smtp_server(vanish_after_data={2})
    results, _ = send(backends(sink, connections=1), make_messages(4))
    assert statuses(results) == {1: "sent", 2: "uncertain", 3: "sent", 4: "sent"}
    assert "may have accepted" in results[2].detail
    assert len(sink.messages) == 4


def test_server_down_is_a_delivery_error_saying_nothing_was_lost(
    backends: Callable[..., SmtpBackend]
) -> None:
    backend = SmtpBackend("127.0.0.1", free_port(), tls="none", timeout=2.0)
    events = EventLog()
    # Down, not misconfigured: the tls hint would mislead (issue 17, the second walk).
    with pytest.raises(DeliveryError, match=r"did not answer \(cannot connect: connection "
                       r"refused\).*Nothing was lost.*check \[smtp\] host and port$"):
        backend.send(make_messages(5), events)
    assert events.calls == []  # nothing was attempted, so nothing is settled
    backend.close()


def test_unresolvable_host_is_a_delivery_error() -> None:
    backend = SmtpBackend("no-such-host.invalid", 25, tls="none", timeout=2.0)
    with pytest.raises(DeliveryError, match="does not resolve"):
        backend.send(make_messages(1), EventLog())


def test_login_succeeds(smtp_server: Factory, backends: Callable[..., SmtpBackend]) -> None:
    sink = smtp_server(auth=("sender", "s3cret"))
    results, _ = send(backends(sink, username="sender", password="s3cret"), make_messages(3))
    assert set(statuses(results).values()) == {"sent"}


def test_refused_login_is_a_delivery_error(
    smtp_server: Factory, backends: Callable[..., SmtpBackend]
) -> None:
    sink = smtp_server(auth=("sender", "s3cret"))
    backend = backends(sink, username="sender", password="wrong")
    events = EventLog()
    with pytest.raises(DeliveryError, match=r"535.*\[smtp\] username and DIGEST_SMTP_PASSWORD"):
        backend.send(make_messages(3), events)
    assert events.results == []
    assert sink.messages == []


def test_a_server_wanting_a_login_is_a_delivery_error_not_failed_recipients(
    smtp_server: Factory, backends: Callable[..., SmtpBackend]
) -> None:
    sink = smtp_server(auth=("sender", "s3cret"))
    events = EventLog()
    with pytest.raises(DeliveryError, match=r"wants a login \(530"):
        backends(sink).send(make_messages(3), events)
    assert events.results == []


def test_starttls_not_offered_fails_closed(
    smtp_server: Factory, backends: Callable[..., SmtpBackend]
) -> None:
    sink = smtp_server()
    with pytest.raises(DeliveryError, match=r'does not offer STARTTLS.*tls = "none"'):
        backends(sink, tls="starttls").send(make_messages(1), EventLog())
    assert sink.messages == []


def test_starttls_with_login(
    smtp_server: Factory, backends: Callable[..., SmtpBackend], tls_files: TlsFiles
) -> None:
    sink = smtp_server(starttls=tls_files.server_context(), auth=("sender", "s3cret"))
    backend = backends(sink, tls="starttls", username="sender", password="s3cret",
                       ssl_context=tls_files.client_context())
    results, _ = send(backend, make_messages(5))
    assert set(statuses(results).values()) == {"sent"}
    assert len(sink.messages) == 5


def test_implicit_tls(
    smtp_server: Factory, backends: Callable[..., SmtpBackend], tls_files: TlsFiles
) -> None:
    sink = smtp_server(implicit_tls=tls_files.server_context())
    backend = backends(sink, tls="tls", ssl_context=tls_files.client_context())
    results, _ = send(backend, make_messages(5))
    assert set(statuses(results).values()) == {"sent"}


def test_an_untrusted_certificate_is_a_delivery_error(
    smtp_server: Factory, backends: Callable[..., SmtpBackend], tls_files: TlsFiles
) -> None:
    sink = smtp_server(starttls=tls_files.server_context())
    with pytest.raises(DeliveryError, match="certificate"):
        backends(sink, tls="starttls").send(make_messages(1), EventLog())


def test_international_addresses(
    smtp_server: Factory, backends: Callable[..., SmtpBackend]
) -> None:
    sink = smtp_server()
    batch = make_messages(2, addresses=["철수@example.com", "ada@bücher.example"])
    results, _ = send(backends(sink, connections=1), batch)
    assert set(statuses(results).values()) == {"sent"}
    got = {m.rcpt_tos[0]: m.smtp_utf8 for m in sink.messages}
    assert got == {"철수@example.com": True, "ada@xn--bcher-kva.example": False}


def test_utf8_address_without_smtputf8_fails_that_recipient_only(
    smtp_server: Factory, backends: Callable[..., SmtpBackend]
) -> None:
    sink = smtp_server(smtputf8=False)
    batch = make_messages(2, addresses=["철수@example.com", "ada@example.com"])
    results, _ = send(backends(sink, connections=1), batch)
    assert statuses(results) == {1: "failed", 2: "sent"}
    assert "SMTPUTF8" in results[1].detail


def test_failing_handing_over_leaves_the_message_unsent(
    smtp_server: Factory, backends: Callable[..., SmtpBackend]
) -> None:
    sink = smtp_server()
    backend = backends(sink, connections=1)
    events = EventLog()

    def ledger_down(msg: Outgoing) -> None:
        raise RuntimeError("database is locked")

    events.on_handing_over = ledger_down
    with pytest.raises(RuntimeError, match="database is locked"):
        backend.send(make_messages(2), events)
    assert events.results == []
    # The body went out without its final ".": the server dropped it with the connection,
    # and the next call starts on a clean connection.
    results, _ = send(backend, make_messages(2, first_id=5))
    assert set(statuses(results).values()) == {"sent"}
    assert [m.rcpt_tos for m in sink.messages] == [("r5@example.com",), ("r6@example.com",)]


def test_every_connection_runs_on_the_calling_thread(
    smtp_server: Factory, backends: Callable[..., SmtpBackend]
) -> None:
    """The ledger's handover is only safe if the final "." follows its commit at once,
    with no other thread to wait for; and the ledger's connection is not thread-safe."""
    sink = smtp_server()
    backend = backends(sink, connections=4)
    threads_before = threading.active_count()
    events = EventLog()
    seen: set[int] = set()
    events.on_handing_over = lambda msg: seen.add(threading.get_ident())
    results = backend.send(make_messages(40), events)
    assert {r.status for r in results} == {"sent"}
    assert seen == {threading.get_ident()}
    assert threading.active_count() == threads_before
    assert sink.connections == 4


@pytest.mark.parametrize("tls", ["none", "tls"])
def test_a_body_larger_than_the_socket_buffers_arrives_whole(
    smtp_server: Factory, backends: Callable[..., SmtpBackend], tls_files: TlsFiles, tls: str
) -> None:
    """The body is with the kernel before the handover; a 4.6 MB one takes several
    writes (under TLS, through the layer below it too)."""
    sink = smtp_server(implicit_tls=tls_files.server_context() if tls == "tls" else None)
    backend = backends(sink, tls=tls, connections=1, ssl_context=tls_files.client_context())
    batch = make_messages(2) + make_messages(1, first_id=3, text=("y" * 76 + "\n") * 60_000)
    results, _ = send(backend, batch)
    assert set(statuses(results).values()) == {"sent"}
    assert [m.data for m in sink.messages] == [m.data for m in batch]


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class StrictPipeliningServer:
    """An SMTP server on loopback that offers PIPELINING and, as RFC 2920 lets it, holds
    its replies to MAIL FROM and RCPT TO until the group's DATA has come: a client that
    waits for each reply before the next command hears nothing. Records each envelope
    and body it accepts. `mail` and `rcpt`: the reply to every MAIL FROM or RCPT TO
    instead of 250; `goodbye_on_mail`: the first MAIL FROM is answered at once with this
    and the connection closed; `after_354`: the first DATA's 354 is followed at once,
    before any body, by this reply, and that message is refused (the server said so
    early, as one that finds it too big does)."""

    def __init__(self, *, mail: bytes = b"250 2.1.0 ok", rcpt: bytes = b"250 2.1.5 ok",
                 goodbye_on_mail: bytes = b"", after_354: bytes = b"") -> None:
        self.mail, self.rcpt = mail, rcpt
        self.goodbye_on_mail, self.after_354 = goodbye_on_mail, after_354
        self.accepted: list[tuple[list[str], bytes]] = []
        self.connections: list[_Strict] = []
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(
            self.loop.create_server(lambda: _Strict(self), "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            for connection in self.connections:
                connection.transport.abort()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class _Strict(asyncio.Protocol):
    def __init__(self, owner: StrictPipeliningServer) -> None:
        self.owner = owner
        owner.connections.append(self)
        self.buffer = b""
        self.held: list[bytes] = []
        self.envelope: list[str] = []
        self.in_data = False
        self.refusing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 strict.test ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                body, found, rest = self.buffer.partition(b"\r\n.\r\n")
                if not found:
                    return
                self.buffer, self.in_data = rest, False
                if self.refusing:
                    self.refusing = False
                    self.transport.write(b"554 5.3.4 refused, as said\r\n")
                else:
                    self.owner.accepted.append((self.envelope, body + b"\r\n"))
                    self.transport.write(b"250 2.0.0 queued\r\n")
                self.envelope = []
                continue
            line, found, rest = self.buffer.partition(b"\r\n")
            if not found:
                return
            self.buffer = rest
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.transport.write(b"250-strict.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == b"MAIL" and self.owner.goodbye_on_mail:
                self.transport.write(self.owner.goodbye_on_mail + b"\r\n")
                self.owner.goodbye_on_mail = b""
                self.transport.close()
                return
            elif verb in (b"MAIL", b"RCPT"):
                self.envelope.append(line.decode())
                reply = self.owner.mail if verb == b"MAIL" else self.owner.rcpt
                self.held.append(reply + b"\r\n")
            elif verb == b"DATA":
                ok = all(r.startswith(b"2") for r in self.held)
                self.transport.write(b"".join(self.held) + (b"354 go ahead\r\n" if ok else
                                                            b"554 5.5.1 no valid recipients\r\n"))
                self.held, self.in_data = [], ok
                if ok and self.owner.after_354:
                    self.transport.write(self.owner.after_354 + b"\r\n")
                    self.owner.after_354, self.refusing = b"", True
            elif verb == b"QUIT":
                self.transport.write(b"221 bye\r\n")
                self.transport.close()
            else:
                self.transport.write(b"250 ok\r\n")


def test_with_pipelining_the_envelope_goes_in_one_write() -> None:
    """MAIL FROM, RCPT TO and DATA go together where the server offers PIPELINING: a
    server that answers only once the group is complete gets every message at once,
    where waiting for each reply would wait for the timeout."""
    server = StrictPipeliningServer()
    backend = SmtpBackend("127.0.0.1", server.port, tls="none", connections=2, timeout=2)
    batch = make_messages(6)
    try:
        started = time.monotonic()
        results = backend.send(batch, EventLog())
        took = time.monotonic() - started
    finally:
        backend.close()
        server.stop()
    assert [r.status for r in results] == ["sent"] * 6, results
    assert took < 2  # nothing waited for a reply that was held
    assert sorted(envelope[1] for envelope, _ in server.accepted) == sorted(
        f"RCPT TO:<{m.recipient}>" for m in batch)
    assert sorted(body for _, body in server.accepted) == sorted(
        m.data.replace(b"\r\n.", b"\r\n..") for m in batch)


def _strict_send(server: StrictPipeliningServer, batch: list[Outgoing], connections: int = 1
                 ) -> list[SendResult]:
    backend = SmtpBackend("127.0.0.1", server.port, tls="none", connections=connections,
                          timeout=2)
    try:
        events = EventLog()
        results = backend.send(batch, events)
        events.check()
        return results
    finally:
        backend.close()


def test_a_pipelined_421_is_heard_and_the_connection_left() -> None:
    """A server closing at MAIL FROM (421) in a pipelined group: the reply is what the
    message's row says, and the connection is left, not reopened for every message."""
    server = StrictPipeliningServer(goodbye_on_mail=b"421 4.3.2 shutting down")
    try:
        results = _strict_send(server, make_messages(4))
    finally:
        server.stop()
    assert [r.status for r in results] == ["deferred"] * 4
    assert results[0].detail == "421 4.3.2 shutting down"
    assert all("421 4.3.2" in r.detail for r in results[1:])
    assert len(server.connections) == 1


def test_any_2xx_to_rcpt_to_is_a_recipient_taken() -> None:
    """252 (cannot verify, will try) takes the recipient: the message goes whole, not
    as an empty message after a refusal."""
    server = StrictPipeliningServer(rcpt=b"252 2.1.5 cannot verify, will attempt")
    batch = make_messages(2)
    try:
        results = _strict_send(server, batch)
    finally:
        server.stop()
    assert [r.status for r in results] == ["sent", "sent"]
    assert sorted(body for _, body in server.accepted) == sorted(
        m.data.replace(b"\r\n.", b"\r\n..") for m in batch)


def test_a_refused_sender_stops_the_run_and_fails_no_one() -> None:
    """553 to MAIL FROM is the list's address refused, the same for every reader: an
    Error that says so, with the messages left queued, not 500 readers failed for good."""
    server = StrictPipeliningServer(mail=b"553 5.7.1 sender address rejected")
    events = EventLog()
    backend = SmtpBackend("127.0.0.1", server.port, tls="none", connections=2, timeout=2)
    try:
        with pytest.raises(DeliveryError, match=r"refused the sender address "
                                                r"<news@example.org> \(553 5.7.1"):
            backend.send(make_messages(6), events)
    finally:
        backend.close()
        server.stop()
    assert events.results == []  # settled as nothing: the claims go back to the queue
    assert server.accepted == []


def test_a_reply_before_the_final_dot_is_not_taken_for_its_answer() -> None:
    """A server that answers in the middle of a body (554, too big) is not sent the "."
    and its early reply is not read as the answer to one: the message is deferred, the
    connection left, and the next message goes through cleanly."""
    server = StrictPipeliningServer(after_354=b"554 5.3.4 message too big")
    batch = make_messages(2)
    try:
        results = _strict_send(server, batch)
        again = _strict_send(server, batch[:1])
    finally:
        server.stop()
    assert [r.status for r in results] == ["deferred", "sent"], results
    assert "554 5.3.4 message too big" in results[0].detail
    assert [r.status for r in again] == ["sent"]
    assert sorted(envelope[1] for envelope, _ in server.accepted) == [
        "RCPT TO:<r1@example.com>", "RCPT TO:<r2@example.com>"]


def test_connections_ready_together_are_handed_over_in_one_commit(
    smtp_server: Factory, backends: Callable[..., SmtpBackend]
) -> None:
    """The group commit: connections whose bodies are with the server when the ledger
    is free are marked `sending` by one hand_over, and each "." follows it. While the
    first commit takes its time, the other three connections get there."""
    sink = smtp_server()
    backend = backends(sink, connections=4)
    events = EventLog()
    groups: list[list[int]] = []
    hand_over = events.hand_over

    def recording(msgs: Sequence[Outgoing]) -> dict[int, str]:
        groups.append([m.delivery_id for m in msgs])
        if len(groups) == 1:
            time.sleep(0.3)  # a slow commit: the others' replies arrive meanwhile
        return hand_over(msgs)

    events.hand_over = recording  # type: ignore[method-assign]
    results = backend.send(make_messages(40), events)
    events.check()
    assert [r.status for r in results] == ["sent"] * 40
    assert sorted(i for group in groups for i in group) == list(range(1, 41))
    assert max(len(group) for group in groups) > 1  # some commit served several
    assert max(len(group) for group in groups) <= 4  # at most one per connection
    assert len(groups) < 40
    assert len(sink.messages) == 40


def test_rate_limiter_spaces_calls() -> None:
    t = FakeTime()
    limiter = RateLimiter(10.0, clock=t.clock, sleep=t.sleep)
    for _ in range(5):
        limiter.wait()
    assert t.sleeps == pytest.approx([0.1] * 4)
    t.now += 5.0  # idle time is not saved up into a burst
    limiter.wait()
    limiter.wait()
    assert t.sleeps[4:] == pytest.approx([0.1])


def test_rate_limiter_off() -> None:
    t = FakeTime()
    limiter = RateLimiter(0.0, clock=t.clock, sleep=t.sleep)
    for _ in range(100):
        limiter.wait()
    assert t.sleeps == []


def test_backend_honours_the_rate_limit(
    smtp_server: Factory, backends: Callable[..., SmtpBackend]
) -> None:
    t = FakeTime()
    sink = smtp_server()
    backend = backends(sink, connections=1, rate_limit=50.0, clock=t.clock, sleep=t.sleep)
    send(backend, make_messages(20))
    # 20 messages at 50/s: the first at once, then 19 waits of 20 ms.
    assert t.sleeps == pytest.approx([0.02] * 19)


def test_the_rate_limit_holds_over_all_connections_without_blocking_them(
    smtp_server: Factory, backends: Callable[..., SmtpBackend]
) -> None:
    # The real clock and the default, awaited sleep: 21 messages at 100/s take 0.2 s
    # however many connections share them.
    sink = smtp_server()
    backend = backends(sink, connections=4, rate_limit=100.0)
    started = time.monotonic()
    results, _ = send(backend, make_messages(21))
    assert time.monotonic() - started >= 0.19
    assert set(statuses(results).values()) == {"sent"}
    assert sink.connections > 1


def test_make_backend_chooses_by_setting(tmp_path: Path) -> None:
    outbox = make_backend(defaults().with_overrides(delivery__outbox_dir=str(tmp_path / "o")))
    assert isinstance(outbox, OutboxBackend)
    assert (tmp_path / "o" / "new").is_dir()
    settings = defaults().with_overrides(
        delivery__backend="smtp", smtp__host="mail.example.org", smtp__port=465,
        smtp__tls="tls", smtp__username="me", smtp__connections=2,
    )
    settings.env["DIGEST_SMTP_PASSWORD"] = "pw"
    smtp = make_backend(settings)
    assert isinstance(smtp, SmtpBackend)
    assert (smtp.host, smtp.port, smtp.tls, smtp.username) == ("mail.example.org", 465, "tls", "me")
    smtp.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"delivery__backend": "carrier-pigeon"}, r"\[delivery\] backend.*outbox, smtp"),
        ({"delivery__backend": "smtp", "smtp__tls": "ssl"}, r"\[smtp\] tls.*starttls"),
        ({"delivery__backend": "smtp", "smtp__username": "me"}, "DIGEST_SMTP_PASSWORD is not set"),
    ],
)
def test_make_backend_config_errors(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_backend(defaults().with_overrides(**overrides))


@given(st.lists(st.sampled_from([b".", b"\r\n", b"\n", b"a", b".."]), max_size=20).map(b"".join))
def test_dot_stuffing_doubles_the_dot_at_every_line_start(data: bytes) -> None:
    """RFC 5321 4.5.2, as a multi-line regex states it: any line that starts with "."."""
    assert _dot_stuffed(data) == re.sub(rb"(?m)^\.", b"..", data)
