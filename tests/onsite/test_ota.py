"""OTA on both databases: the secured packets against the simulated SIM (counter, MAC,
replays, a tampered packet, another SIM's keys), jobs sent by the worker as SMS and
confirmed by the SIM's proof-of-receipt (texted back through the inbound-SMS hook, or handed
in directly), a lost card's applet locked, retries then failure, the operator API and the
CLI. The ledger audit runs after each test (the ``client`` fixture)."""

from __future__ import annotations

import base64
import itertools

import pytest
from cash_helpers import (  # type: ignore[import-not-found]
    OPERATOR,
    client,
    clock,
    ctx,
    idem,
    settings,
    wallet,
)
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from paycell.cli import app as cli_app
from paycell.clock import ManualClock
from paycell.context import Context
from paycell.gateways.sms import list_messages
from paycell.onsite import cards, ota
from paycell.onsite import sim_applet as sa
from paycell.onsite.jobs import run_onsite_jobs
from paycell.onsite.keystore import KeyStore
from paycell.payments.sms_commands import handle_inbound

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest
JOBS = "/v1/operator/ota-jobs"
MASTER = bytes(range(32))
_n = itertools.count(1)


def iccid() -> str:
    body = f"898607{next(_n) + 500_000:012d}"
    return body + cards.luhn_digit(body)


def sim_for(ctx: Context, number: str) -> sa.SimApplet:
    """The SIM as the factory made it: loaded with the keys the platform derives."""
    return sa.SimApplet(number, ota.sim_keys(ctx.settings, number))


def texts_to(ctx: Context, msisdn: str) -> list[str]:
    """OTA packets texted to ``msisdn``, oldest first."""
    return [m.body for m in reversed(list_messages(ctx.engine, msisdn, 100, "out"))
            if m.body.startswith(sa.CMD_PREFIX)]


def deliver(ctx: Context, sim: sa.SimApplet, msisdn: str, *, by_sms: bool = True) -> list[str]:
    """Hand the SIM the newest packet and its proof-of-receipt back to the platform."""
    por = sim.receive(texts_to(ctx, msisdn)[-1])
    assert por is not None and por.startswith(sa.POR_PREFIX)
    if by_sms:
        assert handle_inbound(ctx, msisdn, por).startswith("OTA job")
    else:
        ota.receive_por(ctx, sim.iccid, por)
    return sim.log


# -- the packets and the SIM, pure -------------------------------------------------------------
def _cmd(keys: sa.SimKeys, counter: int, command: str, data: bytes = b"") -> str:
    return sa.encode_command(keys, sa.Command(counter, 7, command, data))


def test_sim_applies_commands_and_answers_with_a_verifiable_por() -> None:
    sim = sa.SimApplet.provision(MASTER, "8986070000000000019")
    keys = sa.derive_sim_keys(MASTER, "8986070000000000019")
    steps = [("install", b"", "installed"),
             ("personalise", sa.personalisation_data("6236880000000000018", "01",
                                                     bytes(16)), "personalised"),
             ("lock", b"", "locked"), ("unlock", b"", "personalised"),
             ("delete", b"", "absent")]
    for counter, (command, data, state) in enumerate(steps, start=1):
        text = _cmd(keys, counter, command, data)
        assert text.isascii() and len(text) <= 160  # one GSM text
        por, body, mac = sa.parse_por(sim.receive(text) or "")
        assert sa.verify_por(keys, body, mac)
        assert (por.status, por.counter, por.job_id, sim.state) == ("ok", counter, 7, state)
        assert por.applet_state == state
    assert sim.card_key is None  # deleted with the applet


def test_personalisation_data_travels_encrypted() -> None:
    keys = sa.derive_sim_keys(MASTER, "8986070000000000027")
    key = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    text = _cmd(keys, 1, "personalise", sa.personalisation_data("6236880000000000018", "01",
                                                                key))
    raw = base64.b64decode(text[len(sa.CMD_PREFIX):])
    assert key not in raw and b"6236880000000000018" not in raw


def test_sim_refuses_a_replayed_or_old_counter() -> None:
    sim = sa.SimApplet.provision(MASTER, "8986070000000000035")
    keys = sim.keys
    install = _cmd(keys, 5, "install")
    assert sa.parse_por(sim.receive(install) or "")[0].status == "ok"
    lock = _cmd(keys, 6, "lock")
    assert sa.parse_por(sim.receive(lock) or "")[0].status == "ok"
    sim.receive(_cmd(keys, 7, "unlock"))
    # the same lock packet again (a replay), then an older counter never seen
    for text in (lock, _cmd(keys, 4, "lock"), _cmd(keys, 7, "delete")):
        por = sa.parse_por(sim.receive(text) or "")[0]
        assert por.status == "counter_low"
        assert (sim.state, sim.counter) == ("installed", 7)


def test_sim_refuses_a_bad_mac() -> None:
    sim = sa.SimApplet.provision(MASTER, "8986070000000000043")
    sim.receive(_cmd(sim.keys, 1, "install"))
    good = _cmd(sim.keys, 2, "delete")
    raw = bytearray(base64.b64decode(good[len(sa.CMD_PREFIX):]))
    raw[14] = sa.COMMANDS["lock"]  # delete -> lock, MAC unchanged
    tampered = sa.CMD_PREFIX + base64.b64encode(bytes(raw)).decode()
    other = sa.derive_sim_keys(MASTER, "8986070000000000050")  # another SIM's keys
    for text in (tampered, _cmd(other, 3, "delete")):
        por = sa.parse_por(sim.receive(text) or "")[0]
        assert por.status == "mac_failed"
        assert (sim.state, sim.counter) == ("installed", 1)
    assert sim.receive("hello") is None  # not a packet: no answer
    assert sa.parse_por(sim.receive(good) or "")[0].status == "ok"  # the genuine one still
    assert sim.state == "absent"


# -- jobs over SMS --------------------------------------------------------------------------
def test_lost_card_is_locked_on_the_sim_confirmed_by_its_por(client: TestClient,
                                                              ctx: Context) -> None:
    sub, auth = wallet(ctx)
    card = cards.activate(ctx, cards.issue_card(ctx, sub, iccid()).id)
    sim = sim_for(ctx, card.iccid)
    for command in ("install", "personalise"):
        ota.create_job(ctx, card.iccid, command, actor="test", card_id=card.id)
    assert run_onsite_jobs(ctx) == 2
    for packet in texts_to(ctx, sub.msisdn):
        por = sim.receive(packet)
        assert por is not None
        handle_inbound(ctx, sub.msisdn, por)
    assert sim.state == "personalised" and sim.pan == card.pan
    assert sim.card_key == KeyStore(ctx.settings).card_key_for_personalisation(card.pan,
                                                                               card.psn)
    assert {j.state for j in ota.list_jobs(ctx, iccid=card.iccid)} == {"confirmed"}

    r = client.post(f"/v1/wallet/nfc-cards/{card.id}/report-lost", headers=idem(**auth))
    assert r.status_code == 200, r.text
    lock_job = ota.list_jobs(ctx, iccid=card.iccid)[0]
    assert (lock_job.command, lock_job.state, lock_job.card_id) == ("lock", "queued", card.id)
    assert run_onsite_jobs(ctx) == 1
    assert ota.get_job(ctx, lock_job.id).state == "sent"
    replies_before = len(list_messages(ctx.engine, sub.msisdn, 100, "out"))
    assert deliver(ctx, sim, sub.msisdn)[-1] == "ok"
    assert sim.state == "locked"
    job = ota.get_job(ctx, lock_job.id)
    assert (job.state, job.attempts, job.last_error) == ("confirmed", 1, None)
    # a SIM's PoR gets no reply text
    assert len(list_messages(ctx.engine, sub.msisdn, 100, "out")) == replies_before
    assert run_onsite_jobs(ctx) == 0  # nothing left to send


def test_replayed_packet_is_refused_by_the_sim_and_changes_nothing(client: TestClient,
                                                                    ctx: Context) -> None:
    sub, _ = wallet(ctx)
    number = iccid()
    sim = sim_for(ctx, number)
    ota.create_job(ctx, number, "install", actor="test", msisdn=sub.msisdn)
    unlock = ota.create_job(ctx, number, "lock", actor="test", msisdn=sub.msisdn)
    run_onsite_jobs(ctx)
    install_text, lock_text = texts_to(ctx, sub.msisdn)
    for text in (install_text, lock_text):
        ota.receive_por(ctx, number, sim.receive(text) or "")
    assert sim.state == "locked"
    ota.create_job(ctx, number, "unlock", actor="test")  # the number is known by now
    run_onsite_jobs(ctx)
    ota.receive_por(ctx, number, sim.receive(texts_to(ctx, sub.msisdn)[-1]) or "")
    assert sim.state == "installed"
    # someone replays the captured lock packet: the SIM refuses it
    por = sim.receive(lock_text) or ""
    assert sa.parse_por(por)[0].status == "counter_low" and sim.state == "installed"
    job = ota.receive_por(ctx, number, por)
    assert job.id == unlock.id and job.state == "confirmed"  # stays confirmed


def test_retries_then_failed_and_a_late_por_still_confirms(client: TestClient, ctx: Context,
                                                           clock: ManualClock) -> None:
    sub, _ = wallet(ctx)
    number = iccid()
    sim = sim_for(ctx, number)
    job = ota.create_job(ctx, number, "install", actor="test", msisdn=sub.msisdn)
    retry = ctx.settings.ota_retry_after_s
    for attempt in range(1, ctx.settings.ota_max_attempts + 1):
        assert run_onsite_jobs(ctx) == 1
        assert run_onsite_jobs(ctx) == 0  # not due again before the retry time
        j = ota.get_job(ctx, job.id)
        assert (j.state, j.attempts, j.counter) == ("sent", attempt, attempt)
        clock.advance(seconds=retry - 1)
        assert run_onsite_jobs(ctx) == 0
        clock.advance(seconds=1)
    assert run_onsite_jobs(ctx) == 1  # out of attempts
    j = ota.get_job(ctx, job.id)
    assert (j.state, j.last_error) == ("failed", "no_proof_of_receipt")
    packets = texts_to(ctx, sub.msisdn)
    assert len(packets) == ctx.settings.ota_max_attempts
    assert len(set(packets)) == len(packets)  # a fresh counter each time
    assert run_onsite_jobs(ctx) == 0
    # the first send did reach the SIM after all: its PoR proves the command applied
    assert ota.receive_por(ctx, number, sim.receive(packets[0]) or "").state == "confirmed"


def test_a_refusing_sim_is_retried(client: TestClient, ctx: Context,
                                   clock: ManualClock) -> None:
    sub, _ = wallet(ctx)
    number = iccid()
    sim = sim_for(ctx, number)
    job = ota.create_job(ctx, number, "lock", actor="test", msisdn=sub.msisdn)
    run_onsite_jobs(ctx)
    ota.receive_por(ctx, number, sim.receive(texts_to(ctx, sub.msisdn)[-1]) or "")
    j = ota.get_job(ctx, job.id)
    assert (j.state, j.last_error) == ("sent", "sim:bad_state")  # no applet to lock yet
    sim.state = "installed"  # (say, installed by the SIM vendor meanwhile)
    clock.advance(seconds=ctx.settings.ota_retry_after_s)
    run_onsite_jobs(ctx)
    assert ota.receive_por(ctx, number, sim.receive(texts_to(ctx, sub.msisdn)[-1])
                           or "").state == "confirmed"
    assert sim.state == "locked"


def test_forged_or_misdirected_pors_are_refused(client: TestClient, ctx: Context) -> None:
    sub, _ = wallet(ctx)
    number, other_number = iccid(), iccid()
    job = ota.create_job(ctx, number, "install", actor="test", msisdn=sub.msisdn)
    run_onsite_jobs(ctx)
    forger = sa.SimApplet(number, sa.derive_sim_keys(MASTER, number))  # wrong keys
    forged = forger.receive(texts_to(ctx, sub.msisdn)[-1])
    assert forged is not None  # (it answers mac_failed, MACed with its own keys)
    fake_ok = sa.encode_por(forger.keys, sa.Por(1, job.id, "ok", "installed"))
    for por in (forged, fake_ok):
        with pytest.raises(ota.OtaPorInvalidError):
            ota.receive_por(ctx, number, por)
        assert handle_inbound(ctx, sub.msisdn, por) == ""
    real = sim_for(ctx, number).receive(texts_to(ctx, sub.msisdn)[-1]) or ""
    with pytest.raises(ota.OtaPorInvalidError):  # a genuine PoR named for another SIM
        ota.receive_por(ctx, other_number, real)
    assert handle_inbound(ctx, "+8613900000000", real) == ""  # from another number
    with pytest.raises(ota.OtaPorInvalidError):
        ota.receive_por(ctx, number, "OTAR1 not-base64!")
    assert ota.get_job(ctx, job.id).state == "sent"
    assert handle_inbound(ctx, sub.msisdn, real).endswith("confirmed")


def test_create_job_validation_and_idempotency(client: TestClient, ctx: Context) -> None:
    with pytest.raises(ota.IccidInvalidError):
        ota.create_job(ctx, "12", "lock", actor="t", msisdn="+8613800000001")
    with pytest.raises(ota.OtaCommandInvalidError):
        ota.create_job(ctx, iccid(), "format", actor="t", msisdn="+8613800000001")
    with pytest.raises(ota.OtaCommandInvalidError):
        ota.create_job(ctx, iccid(), "personalise", actor="t", msisdn="+8613800000001")
    with pytest.raises(ota.OtaSimUnknownError):
        ota.create_job(ctx, iccid(), "lock", actor="t")
    number = iccid()
    a = ota.create_job(ctx, number, "lock", actor="t", msisdn="+8613800000001",
                       request_key="k1")
    b = ota.create_job(ctx, number, "lock", actor="t", msisdn="+8613800000001",
                       request_key="k1")
    assert a == b and len(ota.list_jobs(ctx, iccid=number)) == 1


# -- operator API and CLI -------------------------------------------------------------------
def test_operator_api(client: TestClient, ctx: Context) -> None:
    sub, _ = wallet(ctx)
    number = iccid()
    r = client.post(JOBS, json={"iccid": number, "command": "install", "msisdn": sub.msisdn},
                    headers=idem(**OPERATOR))
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["state"], job["command"], job["attempts"]) == ("queued", "install", 0)
    assert client.post(JOBS, json={"iccid": number, "command": "install"},
                       headers=OPERATOR).status_code == 422  # no Idempotency-Key
    r = client.post(JOBS, json={"iccid": number, "command": "wipe"}, headers=idem(**OPERATOR))
    assert r.status_code == 422
    r = client.post(JOBS, json={"iccid": iccid(), "command": "lock"}, headers=idem(**OPERATOR))
    assert r.status_code == 422 and r.json()["code"] == "ota_sim_unknown"
    client.post(JOBS, json={"iccid": number, "command": "lock"}, headers=idem(**OPERATOR))
    run_onsite_jobs(ctx)
    page = client.get(JOBS, params={"iccid": number, "limit": 1}, headers=OPERATOR).json()
    assert [j["command"] for j in page["items"]] == ["lock"] and page["next_cursor"]
    page2 = client.get(JOBS, params={"iccid": number, "cursor": page["next_cursor"]},
                       headers=OPERATOR).json()
    assert [j["command"] for j in page2["items"]] == ["install"]
    assert page2["next_cursor"] is None
    sim = sim_for(ctx, number)
    por = sim.receive(texts_to(ctx, sub.msisdn)[0]) or ""
    r = client.post(f"{JOBS}/por", json={"iccid": number, "por": por}, headers=OPERATOR)
    assert r.status_code == 200 and r.json()["state"] == "confirmed"
    shown = client.get(f"{JOBS}/{job['id']}", headers=OPERATOR).json()
    assert shown["state"] == "confirmed" and shown["confirmed_at"]
    assert client.get(f"{JOBS}/999999", headers=OPERATOR).json()["code"] == "ota_job_not_found"
    assert client.get(JOBS).status_code == 401


def test_cli_queue_send_list(client: TestClient, ctx: Context, db_url: str) -> None:
    sub, _ = wallet(ctx)
    number = iccid()
    run = CliRunner().invoke
    r = run(cli_app, ["onsite", "ota-queue", number, "install", "--msisdn", sub.msisdn,
                      "--database-url", db_url])
    assert r.exit_code == 0, r.output
    job = ota.list_jobs(ctx, iccid=number)[0]
    r = run(cli_app, ["onsite", "ota-send", str(job.id), "--database-url", db_url])
    assert r.exit_code == 0, r.output
    assert ota.get_job(ctx, job.id).state == "sent" and len(texts_to(ctx, sub.msisdn)) == 1
    r = run(cli_app, ["onsite", "ota-jobs", "--iccid", number, "--database-url", db_url],
            env={"COLUMNS": "200"})
    assert r.exit_code == 0 and number in r.output and "sent" in r.output
    r = run(cli_app, ["onsite", "ota-send", "--database-url", db_url])
    assert r.exit_code == 0 and "0 OTA job" in r.output
    r = run(cli_app, ["onsite", "ota-queue", number, "wipe", "--database-url", db_url])
    assert r.exit_code == 1


def test_concurrent_workers_send_each_job_once(client: TestClient, ctx: Context) -> None:
    import threading

    sub, _ = wallet(ctx)
    numbers = [iccid() for _ in range(6)]
    for number in numbers:
        ota.create_job(ctx, number, "install", actor="test", msisdn=sub.msisdn)
    barrier = threading.Barrier(3)
    sent: list[int] = []

    def work() -> None:
        barrier.wait()
        sent.append(run_onsite_jobs(ctx))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(sent) == 6
    assert len(texts_to(ctx, sub.msisdn)) == 6
    assert {(j.state, j.attempts, j.counter) for j in ota.list_jobs(ctx)} == {("sent", 1, 1)}
