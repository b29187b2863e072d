"""Transit e-cash on both databases, as worked examples: loading the purse online (ARQC ->
ARPC + issuer script the simulated card applies; the purse limit; a tampered ARQC; a
replayed ATC; a blocked card), gates approving fares offline and uploading batches (a batch
uploaded twice clears once; a tampered record rejected), an over-spent purse cleared as far
as it goes and the card hot-listed, the hot list as terminals download it. The ledger audit
runs after each test (the ``client`` fixture)."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, replace

import pytest
from cash_helpers import (  # type: ignore[import-not-found]
    OPERATOR,
    client,
    clock,
    ctx,
    fund,
    idem,
    settings,
    wallet,
)
from fastapi.testclient import TestClient

from paycell.context import Context
from paycell.ledger import TransferRequest
from paycell.ledger import errors as le
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.merchants.service import add_store, create_active_merchant
from paycell.onsite import cards, ecash, emv, terminals
from paycell.onsite.card_sim import CardSim
from paycell.onsite.gate_sim import GateSim
from paycell.onsite.keystore import KeyStore
from paycell.subscribers.service import Subscriber

__all__ = ["client", "clock", "ctx", "settings"]  # fixtures, imported for pytest
DATE = "261126"
_n = itertools.count(1)


@dataclass
class Holder:
    sub: Subscriber
    auth: dict[str, str]
    card: cards.Card
    sim: CardSim


def holder(ctx: Context, wallet_fen: int = 200_000) -> Holder:
    sub, auth = wallet(ctx)
    fund(ctx, sub, wallet_fen)
    body = f"898608{next(_n) + 700_000:012d}"
    card = cards.issue_card(ctx, sub, body + cards.luhn_digit(body))
    card = cards.activate(ctx, card.id)
    return Holder(sub, auth, card, CardSim.personalised(KeyStore(ctx.settings), card.pan,
                                                        card.psn))


@dataclass
class Transit:
    merchant_id: int
    payable_id: int
    gate: GateSim
    terminal: terminals.Terminal


def transit(ctx: Context, fare_fen: int = 300) -> Transit:
    """The metro: a merchant with a gate line (a store), money for the gate's deposit."""
    m = create_active_merchant(ctx, name=f"Metro Line {next(_n)}", category="retail")
    add_store(ctx, m.merchant.id, "GATES", "Station gates", "People's Square", "test")
    payable = m.merchant.payable_account_id
    assert payable is not None
    source = system_account(ctx.ledger, Code.BANK_CLEARING, "testbank")
    ctx.ledger.post_one(TransferRequest(f"test:payable:{uuid.uuid4()}", source.id, payable,
                                        ctx.settings.terminal_deposit_fen,
                                        code=TransferCode.TOPUP_BANK, ref="test"))
    reg = terminals.register_terminal(ctx, m.merchant.code, "GATES", "test")
    gate = GateSim(reg.terminal.terminal_id, fare_fen, key_hex=reg.key_hex, clock=ctx.clock)
    return Transit(m.merchant.id, payable, gate, reg.terminal)


def bal(ctx: Context, account_id: int) -> int:
    return ctx.ledger.account(account_id).balance


def load(ctx: Context, h: Holder, amount_fen: int) -> ecash.LoadResult:
    """The wallet app taps its own card: ARQC, the platform's answer, the second AC."""
    ac = h.sim.generate_ac(amount_fen, unpredictable="1A2B3C4D", date=DATE, txn_type="60")
    res = ecash.load_ecash(ctx, h.card.id, ac.txn, ac.cryptogram, h.sim.ecash_fen,
                           actor="test")
    assert h.sim.second_generate_ac(res.arpc, res.arc, (res.script,)).kind == "TC"
    return res


# -- loading --------------------------------------------------------------------------------
def test_load_arqc_arpc_and_script(client: TestClient, ctx: Context) -> None:
    h = holder(ctx, 50_000)
    ac = h.sim.generate_ac(30_000, unpredictable="0BADBEEF", date=DATE, txn_type="60")
    assert ac.kind == "ARQC"
    res = ecash.load_ecash(ctx, h.card.id, ac.txn, ac.cryptogram, 0, actor="test")
    assert (res.amount_fen, res.new_balance_fen, res.arc) == (30_000, 30_000, b"00")
    assert h.sim.verify_arpc(res.arpc, res.arc)
    assert h.sim.second_generate_ac(res.arpc, res.arc, (res.script,)).kind == "TC"
    assert h.sim.ecash_fen == 30_000
    assert bal(ctx, h.sub.wallet_account_id) == 20_000
    assert bal(ctx, h.card.ecash_account_id) == 30_000
    t = ctx.ledger.transfer(res.transfer_id)
    assert t is not None and t.code == TransferCode.ECASH_LOAD
    assert res.transfer_id == f"ecash-load:{h.card.id}:{ac.atc}"
    # the same ARQC again (the answer was lost): the same answer, the money moved once
    again = ecash.load_ecash(ctx, h.card.id, ac.txn, ac.cryptogram, 0, actor="test")
    assert again.replayed and (again.arpc, again.script) == (res.arpc, res.script)
    assert bal(ctx, h.sub.wallet_account_id) == 20_000
    # a forged script (another balance, the MAC kept) is ignored by the card
    ac2 = h.sim.generate_ac(1_000, unpredictable="0BADBEEF", date=DATE, txn_type="60")
    res2 = ecash.load_ecash(ctx, h.card.id, ac2.txn, ac2.cryptogram, h.sim.ecash_fen,
                            actor="test")
    forged = res2.script[:5] + emv._bcd(99_999, 6) + res2.script[11:]
    h.sim.second_generate_ac(res2.arpc, res2.arc, (forged,))
    assert h.sim.ecash_fen == 30_000  # (the holder paid and lost the load: he forged it)


def test_tampered_arqc_replayed_atc_and_blocked_card(client: TestClient,
                                                     ctx: Context) -> None:
    h = holder(ctx)
    ac = h.sim.generate_ac(10_000, unpredictable="00000001", date=DATE, txn_type="60")
    bad = bytes([ac.cryptogram[0] ^ 1]) + ac.cryptogram[1:]
    with pytest.raises(ecash.EcashCryptogramInvalidError):
        ecash.load_ecash(ctx, h.card.id, ac.txn, bad, 0, actor="test")
    more = replace(ac.txn, amount_fen=90_000)  # the amount changed after the card signed
    with pytest.raises(ecash.EcashCryptogramInvalidError):
        ecash.load_ecash(ctx, h.card.id, more, ac.cryptogram, 0, actor="test")
    with pytest.raises(ecash.EcashLoadInvalidError):  # a purchase is not a load
        purchase = h.sim.generate_ac(100, unpredictable="00000002", date=DATE)
        ecash.load_ecash(ctx, h.card.id, purchase.txn, purchase.cryptogram, 0, actor="t")
    load(ctx, h, 5_000)
    # a genuine but older ARQC (ATC below the last seen online) is a replay
    with pytest.raises(cards.AtcReplayedError):
        ecash.load_ecash(ctx, h.card.id, ac.txn, ac.cryptogram, 0, actor="test")
    assert bal(ctx, h.card.ecash_account_id) == 5_000
    cards.report_lost(ctx, h.card.id, "test")
    ac = h.sim.generate_ac(1_000, unpredictable="00000003", date=DATE, txn_type="60")
    with pytest.raises(ecash.EcashCardBlockedError):
        ecash.load_ecash(ctx, h.card.id, ac.txn, ac.cryptogram, 5_000, actor="test")
    assert bal(ctx, h.card.ecash_account_id) == 5_000
    assert cards.get_card(ctx, h.card.id).last_atc < ac.atc  # nothing kept


def test_purse_limit_and_wallet_balance(client: TestClient, ctx: Context) -> None:
    limit = ctx.settings.ecash_purse_limit_fen  # 1,000 CNY; tier 0 moves 500 at a time
    h = holder(ctx, limit + 50_000)
    load(ctx, h, limit // 2)
    ac = h.sim.generate_ac(limit // 2 + 1, unpredictable="00000004", date=DATE,
                           txn_type="60")
    with pytest.raises(ecash.EcashPurseLimitError) as info:
        ecash.load_ecash(ctx, h.card.id, ac.txn, ac.cryptogram, h.sim.ecash_fen, actor="t")
    assert info.value.detail["limit_fen"] == limit
    load(ctx, h, limit // 2)  # exactly to the limit
    assert h.sim.ecash_fen == limit == bal(ctx, h.card.ecash_account_id)
    # a card that lies about its balance still cannot push the platform's exposure over
    ac = h.sim.generate_ac(1_000, unpredictable="00000005", date=DATE, txn_type="60")
    with pytest.raises(ecash.EcashPurseLimitError):
        ecash.load_ecash(ctx, h.card.id, ac.txn, ac.cryptogram, 0, actor="t")
    assert bal(ctx, h.sub.wallet_account_id) == 50_000
    poor = holder(ctx, 500)
    ac = poor.sim.generate_ac(600, unpredictable="00000006", date=DATE, txn_type="60")
    with pytest.raises(le.AccountOverdraftError):
        ecash.load_ecash(ctx, poor.card.id, ac.txn, ac.cryptogram, 0, actor="t")
    assert bal(ctx, poor.sub.wallet_account_id) == 500


def test_load_over_http(client: TestClient, ctx: Context) -> None:
    h = holder(ctx)
    ac = h.sim.generate_ac(2_000, unpredictable="CAFEBABE", date=DATE, txn_type="60")
    t = ac.txn
    body = {"atc": t.atc, "amount_fen": t.amount_fen, "date": t.date,
            "unpredictable": t.unpredictable, "cvr": t.cvr, "aip": t.aip,
            "arqc": ac.cryptogram.hex(), "card_balance_fen": 0}
    url = f"/v1/wallet/nfc-cards/{h.card.id}/ecash/loads"
    r = client.post(url, json=body, headers=h.auth)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["new_balance_fen"] == 2_000 and out["arc"] == "00"
    done = h.sim.second_generate_ac(bytes.fromhex(out["arpc"]), out["arc"].encode(),
                                    (bytes.fromhex(out["issuer_script"]),))
    assert done.kind == "TC" and h.sim.ecash_fen == 2_000
    _, other_auth = wallet(ctx)
    assert client.post(url, json=body, headers=other_auth).status_code == 404
    body["arqc"] = "00" * 8  # the same ATC with another cryptogram
    r = client.post(url, json=body, headers=h.auth)
    assert r.status_code == 409 and r.json()["code"] == "ecash_load_conflict"
    body["atc"] += 1  # a new ATC, a cryptogram the card never made
    r = client.post(url, json=body, headers=h.auth)
    assert r.status_code == 403 and r.json()["code"] == "ecash_cryptogram_invalid"
    summary = client.get(f"/v1/operator/nfc-cards/{h.card.id}/ecash", headers=OPERATOR).json()
    assert summary == {"card_id": h.card.id, "loaded_fen": 2_000, "cleared_fen": 0,
                       "excess_fen": 0, "purse_fen": 2_000}


# -- gates and clearing ---------------------------------------------------------------------
def test_offline_batch_uploaded_twice_clears_once(client: TestClient, ctx: Context) -> None:
    h = holder(ctx)
    load(ctx, h, 10_000)
    metro = transit(ctx, fare_fen=300)
    payable_before = bal(ctx, metro.payable_id)
    assert all(metro.gate.tap(h.sim) for _ in range(3))
    batch = metro.gate.close_batch()
    r = metro.gate.upload(client, batch, batch_ref="B1")
    assert r.status_code == 200, r.text
    first = r.json()
    assert (first["cleared"], first["duplicates"], first["cleared_fen"]) == (3, 0, 900)
    r = metro.gate.upload(client, batch, batch_ref="B1")  # the gate was not sure: again
    second = r.json()
    assert (second["cleared"], second["duplicates"], second["cleared_fen"]) == (0, 3, 0)
    assert bal(ctx, metro.payable_id) == payable_before + 900
    assert bal(ctx, h.card.ecash_account_id) == 10_000 - 900 == h.sim.ecash_fen
    # the next batch re-sends one old record with a new one: only the new one clears
    assert metro.gate.tap(h.sim, 500)
    mixed = [batch[0], *metro.gate.close_batch()]
    res = ecash.clear_batch(ctx, metro.terminal, mixed)
    assert [o.status for o in res.outcomes] == ["duplicate", "cleared"]
    assert bal(ctx, metro.payable_id) == payable_before + 1_400
    t = ctx.ledger.transfer(f"ecash-clear:{h.card.pan}:{h.card.psn}:{batch[0].atc}")
    assert t is not None and t.code == TransferCode.ECASH_CLEAR


def test_tampered_and_unknown_records_are_rejected(client: TestClient, ctx: Context) -> None:
    h = holder(ctx)
    load(ctx, h, 5_000)
    metro = transit(ctx)
    metro.gate.tap(h.sim)
    metro.gate.tap(h.sim)
    good, other = metro.gate.close_batch()
    inflated = replace(other, amount_fen=3_000)  # the gate's operator raises the fare
    stranger = replace(good, pan="6236889999999999994")
    res = ecash.clear_batch(ctx, metro.terminal, [inflated, stranger, good])
    assert [(o.status, o.reason) for o in res.outcomes] == [
        ("rejected", "tc_invalid"), ("rejected", "card_unknown"), ("cleared", None)]
    # a rejected forgery does not block the genuine record with the same ATC
    res = ecash.clear_batch(ctx, metro.terminal, [other])
    assert res.cleared == 1 and res.cleared_fen == 300


def test_overspend_is_cleared_as_far_as_the_purse_goes_and_hot_listed(
        client: TestClient, ctx: Context) -> None:
    h = holder(ctx)
    load(ctx, h, 1_000)
    metro = transit(ctx, fare_fen=400)
    h.sim.ecash_fen = 5_000  # the purse was tampered with (a cloned or hacked card)
    assert all(metro.gate.tap(h.sim) for _ in range(4))  # 1,600 spent, 1,000 loaded
    payable_before = bal(ctx, metro.payable_id)
    r = metro.gate.upload(client, metro.gate.close_batch())
    res = r.json()
    assert [(o["status"], o["cleared_fen"], o["excess_fen"]) for o in res["outcomes"]] == [
        ("cleared", 400, 0), ("cleared", 400, 0), ("partial", 200, 200), ("partial", 0, 400)]
    assert (res["cleared_fen"], res["excess_fen"]) == (1_000, 600)
    assert bal(ctx, h.card.ecash_account_id) == 0
    assert bal(ctx, metro.payable_id) == payable_before + 1_000
    card = cards.get_card(ctx, h.card.id)
    assert card.hot_listed and card.block_reason == "ecash_overspend"
    assert ecash.purse_summary(ctx, card.id) == {"loaded_fen": 1_000, "cleared_fen": 1_000,
                                                 "excess_fen": 600, "purse_fen": 0}
    # the gates learn it and refuse the card from now on
    assert metro.gate.download_hot_list(client) >= 1
    assert (card.pan, card.psn) in metro.gate.hot
    assert not metro.gate.tap(h.sim)
    # and it can no longer be loaded online
    ac = h.sim.generate_ac(100, unpredictable="00000007", date=DATE, txn_type="60")
    with pytest.raises(ecash.EcashCardBlockedError):
        ecash.load_ecash(ctx, card.id, ac.txn, ac.cryptogram, 0, actor="t")


def test_hot_list_for_terminals_and_operators(client: TestClient, ctx: Context) -> None:
    lost, fine = holder(ctx), holder(ctx)
    cards.report_lost(ctx, lost.card.id, "test")
    metro = transit(ctx)
    metro.gate.download_hot_list(client)
    assert (lost.card.pan, lost.card.psn) in metro.gate.hot
    assert (fine.card.pan, fine.card.psn) not in metro.gate.hot
    assert not metro.gate.tap(lost.sim)
    assert client.get("/v1/terminal/hot-list").status_code == 401  # not MACed
    r = client.get("/v1/operator/ecash/hot-list", headers=OPERATOR)
    entries = {c["pan"]: c["reason"] for c in r.json()["cards"]}
    assert entries[lost.card.pan] == "lost" and fine.card.pan not in entries
    assert client.post("/v1/terminal/ecash-batches", json={"records": []},
                       headers=idem()).status_code == 401


def test_the_same_batch_uploaded_concurrently_clears_once(client: TestClient,
                                                          ctx: Context) -> None:
    import threading

    h = holder(ctx)
    load(ctx, h, 3_000)
    metro = transit(ctx, fare_fen=700)
    for _ in range(4):
        metro.gate.tap(h.sim)
    batch = metro.gate.close_batch()
    payable_before = bal(ctx, metro.payable_id)
    barrier = threading.Barrier(3)
    results: list[ecash.BatchResult] = []

    def upload() -> None:
        barrier.wait()
        results.append(ecash.clear_batch(ctx, metro.terminal, batch))

    threads = [threading.Thread(target=upload) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.cleared for r in results) == 4
    assert sum(r.duplicates for r in results) == 8
    assert bal(ctx, metro.payable_id) == payable_before + 2_800
    assert bal(ctx, h.card.ecash_account_id) == 200
