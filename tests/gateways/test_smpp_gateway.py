"""``SmppSms`` against a real SMPP server on loopback (the simulator, and once smpp34's)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import smpp34
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from paycell.cli import app as cli_app
from paycell.clock import SystemClock
from paycell.config import get_settings
from paycell.context import Context, build_context
from paycell.gateways.smpp import SmppSms
from paycell.gateways.sms import (
    RecordingSms,
    list_messages,
    record_all,
    send_all,
    sms_message_parts,
    sms_messages,
)
from paycell.gateways.smsc_sim import SmscSim, wait_for
from paycell.payments import sms_commands

ALICE = "+8613800138000"
BOB = "+8613900139000"


@pytest.fixture
def sim() -> Iterator[SmscSim]:
    smsc = SmscSim(system_id="paycell", password="pw").start()
    try:
        yield smsc
    finally:
        smsc.stop()


@pytest.fixture
def make_gateway(engine: Engine) -> Iterator[Callable[..., SmppSms]]:
    made: list[SmppSms] = []

    def make(port: int, **kw: Any) -> SmppSms:
        options: dict[str, Any] = {"system_id": "paycell", "password": "pw",
                                   "source_addr": "10690000", "backoff_s": (0.05, 0.2)}
        options.update(kw)
        gw = SmppSms(engine, SystemClock(), host="127.0.0.1", port=port, **options)
        made.append(gw)
        return gw.start()

    yield make
    for gw in made:
        gw.close()


@pytest.fixture
def inbound(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Context, str, str]]:
    """Texts handed to handle_inbound; it answers each with `re: TEXT`."""
    calls: list[tuple[Context, str, str]] = []

    def handle(ctx: Context, msisdn: str, body: str) -> None:
        calls.append((ctx, msisdn, body))
        ctx.sms.send(msisdn, f"re: {body}")

    monkeypatch.setattr(sms_commands, "handle_inbound", handle)
    return calls


def status(engine: Engine, message_id: int) -> tuple[str, str | None, str | None]:
    with engine.connect() as conn:
        row = conn.execute(select(sms_messages).where(sms_messages.c.id == message_id)).one()
    return row.status, row.smsc_message_id, row.error


def last_out(engine: Engine) -> int:
    return list_messages(engine, direction="out", limit=1)[0].id


def test_bind_submit_and_receipt_delivered(engine: Engine, sim: SmscSim,
                                           make_gateway: Callable[..., SmppSms]) -> None:
    gw = make_gateway(sim.port)
    gw.send(ALICE, "Your code is 123456")
    sent = last_out(engine)
    assert wait_for(lambda: status(engine, sent)[0] == "delivered")
    [part] = sim.submitted
    assert (part.msisdn, part.source_addr, part.data_coding, part.registered_delivery) == \
        (ALICE, "10690000", 0, 1)
    assert status(engine, sent) == ("delivered", part.message_id, None)
    assert [(b.system_id, b.bind_type, b.ok) for b in sim.binds] == [("paycell", "TRX", True)]


def test_chinese_text_goes_in_ucs2(engine: Engine, sim: SmscSim,
                                   make_gateway: Callable[..., SmppSms]) -> None:
    gw = make_gateway(sim.port)
    gw.send(ALICE, "您的验证码是 123456，5 分钟内有效")
    assert wait_for(lambda: status(engine, last_out(engine))[0] == "delivered")
    [text] = sim.texts
    assert (text.text, text.data_coding) == ("您的验证码是 123456，5 分钟内有效", 8)


def test_long_text_goes_in_concatenated_parts(engine: Engine, sim: SmscSim,
                                              make_gateway: Callable[..., SmppSms]) -> None:
    gw = make_gateway(sim.port)
    long_text = "".join(f"line {i}: paid 12.30 CNY to M100001. " for i in range(12))
    gw.send(ALICE, long_text)
    sent = last_out(engine)
    assert wait_for(lambda: status(engine, sent)[0] == "delivered")
    assert len(sim.submitted) == 3 and all(p.esm_class == 0x40 for p in sim.submitted)
    assert [t.text for t in sim.texts] == [long_text]
    with engine.connect() as conn:
        parts = conn.execute(select(sms_message_parts.c.seq, sms_message_parts.c.status)
                             .where(sms_message_parts.c.message_id == sent)
                             .order_by(sms_message_parts.c.seq)).all()
    assert [tuple(p) for p in parts] == [(1, "delivered"), (2, "delivered"), (3, "delivered")]


def test_failed_receipt_and_refused_submit_mark_the_text_failed(
        engine: Engine, sim: SmscSim, make_gateway: Callable[..., SmppSms]) -> None:
    sim.outcomes[ALICE] = "UNDELIV"
    sim.outcomes[BOB] = "reject"
    gw = make_gateway(sim.port)
    gw.send(ALICE, "undeliverable")
    undeliverable = last_out(engine)
    gw.send(BOB, "refused")
    refused = last_out(engine)
    assert wait_for(lambda: status(engine, undeliverable)[0] == "failed"
                    and status(engine, refused)[0] == "failed")
    assert "UNDELIV" in (status(engine, undeliverable)[2] or "")
    assert status(engine, refused)[2] == "submit_sm refused: ESME_RINVDSTADR"


def test_inbound_text_goes_to_handle_inbound(
        db_url: str, engine: Engine, sim: SmscSim,
        inbound: list[tuple[Context, str, str]]) -> None:
    settings = get_settings().model_copy(update={
        "sms_backend": "smpp", "smpp_port": sim.port, "smpp_system_id": "paycell",
        "smpp_password": "pw", "database_url": db_url})
    ctx = build_context(engine, settings=settings)
    try:
        assert isinstance(ctx.sms, SmppSms) and ctx.sms.bound.wait(10)
        assert sim.inject_mo(BOB, "BAL")
        assert sim.inject_mo(ALICE, "查询余额" * 20)  # 80 UCS2 characters: two parts
        assert wait_for(lambda: len(sim.texts) == 2)
    finally:
        ctx.close()
    assert [(c[0], c[1], c[2]) for c in inbound] == [(ctx, BOB, "BAL"),
                                                     (ctx, ALICE, "查询余额" * 20)]
    received = list_messages(engine, direction="in")
    assert {(m.msisdn, m.body, m.status) for m in received} == {
        (BOB, "BAL", "received"), (ALICE, "查询余额" * 20, "received")}
    assert {(t.msisdn, t.text) for t in sim.texts} == {(BOB, "re: BAL"),
                                                       (ALICE, "re: " + "查询余额" * 20)}


def test_enquire_link_both_ways(engine: Engine, sim: SmscSim,
                                make_gateway: Callable[..., SmppSms]) -> None:
    gw = make_gateway(sim.port, enquire_link_s=0.05)
    assert gw.bound.wait(10)
    assert sim.send_enquire_link()  # the gateway answers the SMSC's
    assert wait_for(lambda: sim.enquire_links >= 2)  # and keeps the link alive itself
    assert gw.bound.is_set() and len(sim.binds) == 1


def test_reconnects_and_sends_queued_texts_exactly_once(
        engine: Engine, sim: SmscSim, make_gateway: Callable[..., SmppSms]) -> None:
    gw = make_gateway(sim.port)
    assert gw.bound.wait(10)
    # A dropped connection: texts sent right then still go, once each.
    assert sim.drop_connections() == 1
    gw.send(ALICE, "first")
    gw.send(ALICE, "x" * 300)
    assert wait_for(lambda: len(sim.texts) == 2)
    assert wait_for(lambda: all(m.status == "delivered" for m in list_messages(engine)))
    # The SMSC away for a while: texts wait in the queue until it is back.
    port = sim.port
    sim.stop()
    assert wait_for(lambda: not gw.bound.is_set())
    gw.send(BOB, "while away 1")
    gw.send(BOB, "while away 2")
    back = SmscSim(port=port, system_id="paycell", password="pw").start()
    try:
        assert wait_for(lambda: len(back.texts) == 2)
        assert wait_for(lambda: all(m.status == "delivered" for m in list_messages(engine)))
        assert [t.text for t in back.texts] == ["while away 1", "while away 2"]
        assert len(back.submitted) == 2
    finally:
        back.stop()
    assert [t.text for t in sim.texts] == ["first", "x" * 300]
    assert len(sim.submitted) == 3
    assert sum(b.ok for b in sim.binds) == 2


def test_wrong_password_is_refused_and_logged(
        engine: Engine, sim: SmscSim, make_gateway: Callable[..., SmppSms],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="paycell.gateways.smpp")
    gw = make_gateway(sim.port, password="wrong")
    gw.send(ALICE, "hello")  # no exception: the text waits
    assert wait_for(lambda: len(sim.binds) >= 2)
    assert not any(b.ok for b in sim.binds)
    assert wait_for(lambda: any("refused the bind" in r.getMessage()
                                and "ESME_RINVPASWD" in r.getMessage()
                                for r in caplog.records))
    assert not gw.bound.is_set()
    assert status(engine, last_out(engine))[0] == "queued"
    gw.close()
    assert sim.submitted == []


def test_close_sends_what_is_queued_then_unbinds(
        engine: Engine, sim: SmscSim, make_gateway: Callable[..., SmppSms]) -> None:
    gw = make_gateway(sim.port)
    assert gw.bound.wait(10)
    gw.send(ALICE, "last words")
    gw.close()
    assert [t.text for t in sim.texts] == ["last words"]
    assert sim.unbinds == 1
    assert wait_for(lambda: sim.bound_sessions() == 0)
    gw.send(ALICE, "after close")  # recorded, not sent, no exception
    assert status(engine, last_out(engine))[0] == "queued"


def test_against_an_independent_smsc(engine: Engine,
                                     make_gateway: Callable[..., SmppSms]) -> None:
    """smpp34's server (another implementation): bind, submit, receipt."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    received: list[bytes] = []
    ready, done = threading.Event(), threading.Event()

    async def smsc() -> None:
        server = smpp34.Server(host="127.0.0.1", port=port, system_id="OTHER")
        await server.start()
        ready.set()
        sessions: dict[str, Any] = {}
        try:
            while not done.is_set():
                try:
                    ev = await asyncio.wait_for(server.next(), 0.1)
                except TimeoutError:
                    continue
                if isinstance(ev, smpp34.Esme):
                    sessions[ev.session_id] = ev
                elif isinstance(ev, smpp34.SubmitSmEvent):
                    received.append(ev.short_message)
                    ev.accept("ext-1")
                    await sessions[ev.session_id].deliver_sm(
                        ev.source_addr, b"id:ext-1 sub:001 dlvrd:001 stat:DELIVRD err:000",
                        source_addr=ev.destination_addr, esm_class=0x04)
        finally:
            await server.stop()

    thread = threading.Thread(target=asyncio.run, args=(smsc(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(10)
        gw = make_gateway(port)
        gw.send(ALICE, "hello from paycell")
        sent = last_out(engine)
        assert wait_for(lambda: status(engine, sent)[0] == "delivered")
        assert status(engine, sent)[1] == "ext-1" and received == [b"hello from paycell"]
        gw.close()
    finally:
        done.set()
        thread.join(10)


def test_send_all_records_a_batch_in_one_go_and_delivers_each(
        engine: Engine, sim: SmscSim, make_gateway: Callable[..., SmppSms]) -> None:
    gw = make_gateway(sim.port)
    send_all(gw, [(ALICE, "code 111111"), (BOB, "x" * 40_000), (BOB, "code 222222")])
    out = list_messages(engine, direction="out")
    assert len(out) == 3
    by_body = {m.body[:11]: m for m in out}
    assert by_body["xxxxxxxxxxx"].status == "failed"
    assert by_body["xxxxxxxxxxx"].error == "text_too_long"
    assert wait_for(lambda: {status(engine, by_body[b].id)[0]
                             for b in ("code 111111", "code 222222")} == {"delivered"})
    assert sorted((t.msisdn, t.text) for t in sim.texts) == [
        (ALICE, "code 111111"), (BOB, "code 222222")]


def test_send_all_on_the_recorder_and_on_a_gateway_with_send_only(engine: Engine) -> None:
    rec = RecordingSms(engine, SystemClock())
    send_all(rec, [(ALICE, "one"), (BOB, "two")])
    send_all(rec, [])
    assert [(m.msisdn, m.body, m.status) for m in list_messages(engine)] == [
        (BOB, "two", "recorded"), (ALICE, "one", "recorded")]

    class Plain:
        def __init__(self) -> None:
            self.sent: list[tuple[str, str]] = []

        def send(self, msisdn: str, body: str) -> None:
            self.sent.append((msisdn, body))

    plain = Plain()
    send_all(plain, [(ALICE, "one"), (BOB, "two")])
    assert plain.sent == [(ALICE, "one"), (BOB, "two")]


def test_recorder_is_the_default_and_sms_receive_feeds_handle_inbound(
        db_url: str, engine: Engine, inbound: list[tuple[Context, str, str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYCELL_DATABASE_URL", db_url)
    assert isinstance(build_context(engine).sms, RecordingSms)
    result = CliRunner().invoke(cli_app, ["sms", "receive", "13800138000", "BAL",
                                          "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert "re: BAL" in result.output
    assert [(c[1], c[2]) for c in inbound] == [(ALICE, "BAL")]
    assert [(m.direction, m.body) for m in list_messages(engine)] == [("out", "re: BAL"),
                                                                      ("in", "BAL")]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_texts_a_dead_process_left_queued_are_sent_by_another_once(
        engine: Engine, sim: SmscSim, make_gateway: Callable[..., SmppSms]) -> None:
    # Process A cannot reach its SMSC, queues two texts, and dies with them queued.
    dead = make_gateway(_closed_port())
    dead.send(ALICE, "left behind")
    dead.send(BOB, "y" * 300)  # two parts
    dead.close(timeout=0.1)
    assert [m.status for m in list_messages(engine)] == ["queued", "queued"]
    # A third text, queued by A, whose first part the SMSC had accepted before A died.
    with engine.begin() as conn:
        mid = conn.execute(sms_messages.insert().values(
            direction="out", msisdn=ALICE, body="z" * 300, status="queued", parts=2,
            created_at=1, updated_at=1).returning(sms_messages.c.id)).scalar_one()
        conn.execute(sms_message_parts.insert().values(
            message_id=mid, seq=1, smsc_message_id="early-1", status="submitted",
            created_at=1, updated_at=1))
    # Process B's worker job takes them over: each sent once, from its first unsent part.
    live = make_gateway(sim.port)
    assert live.bound.wait(10)
    assert live.adopt_stale(older_than_s=3600) == 1  # only the long-untouched one yet
    assert live.adopt_stale(older_than_s=0) == 2
    assert live.adopt_stale(older_than_s=0) == 0  # already in its queue: not twice
    assert wait_for(lambda: len(sim.submitted) == 1 + 1 + 2)  # z's second part, the rest
    assert wait_for(lambda: sorted(t.text for t in sim.texts) == ["left behind", "y" * 300])
    # z's first part went through A's SMSC session, whose receipt never comes here.
    assert wait_for(lambda: sorted(m.status for m in list_messages(engine)) == [
        "delivered", "delivered", "submitted"])
    other = make_gateway(sim.port)  # a third process finds nothing left to adopt
    assert other.adopt_stale(older_than_s=0) == 0
    assert len(sim.submitted) == 4


def test_a_live_gateway_keeps_its_queued_texts(engine: Engine, sim: SmscSim,
                                               make_gateway: Callable[..., SmppSms],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import paycell.gateways.smpp as smpp

    monkeypatch.setattr(smpp, "HEARTBEAT_S", 0.05)
    away = make_gateway(_closed_port())  # alive, waiting for its SMSC
    away.send(ALICE, "mine")

    def touched_at() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(sms_messages.c.updated_at)).scalar_one())

    first = touched_at()
    assert wait_for(lambda: touched_at() > first)  # touched by its heartbeat
    other = make_gateway(sim.port)
    assert other.adopt_stale(older_than_s=1) == 0  # fresh: not a dead process's
    assert sim.submitted == []


def test_record_all_writes_in_the_callers_transaction_and_sends_after_it(
        engine: Engine, sim: SmscSim, make_gateway: Callable[..., SmppSms]) -> None:
    """A rolled-back transaction leaves no text and sends none; a committed one leaves the
    text ``queued`` until what record_all returned is called, which hands it to the SMSC."""
    gw = make_gateway(sim.port)

    class Died(Exception):
        pass

    with pytest.raises(Died), engine.begin() as conn:
        record_all(gw, conn, [(ALICE, "never")])
        raise Died
    assert list_messages(engine) == []
    with engine.begin() as conn:
        dispatch = record_all(gw, conn, [(ALICE, "code 333333")])
    [queued] = list_messages(engine)
    assert queued.status == "queued" and sim.texts == []
    dispatch()
    assert wait_for(lambda: status(engine, queued.id)[0] == "delivered")
    assert [(t.msisdn, t.text) for t in sim.texts] == [(ALICE, "code 333333")]
    rec = RecordingSms(engine, SystemClock())
    with pytest.raises(Died), engine.begin() as conn:
        record_all(rec, conn, [(BOB, "never")])
        raise Died
    assert [m.body for m in list_messages(engine, BOB)] == []
