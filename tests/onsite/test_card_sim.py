"""The simulated card against the key store: its ARQCs verify, the issuer's ARPC is checked
by the card (TC only for an authentic approval), e-cash load scripts apply only after a
valid ARPC and within the purse limit, and offline purchases (TC) are limited by the purse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paycell.config import Settings
from paycell.onsite import cards, emv
from paycell.onsite.card_sim import AcResponse, CardSim, CardSimError
from paycell.onsite.keystore import KeyStore

KEYS = KeyStore(Settings(_env_file=None))
PAN, PSN = cards.make_pan(42), "01"
TAP = {"unpredictable": "0BADF00D", "date": "261126"}


def sim(**kw: int) -> CardSim:
    return CardSim.personalised(KEYS, PAN, PSN, **kw)


def verifies(resp: AcResponse) -> bool:
    return KEYS.verify_cryptogram(PAN, PSN, resp.atc, resp.txn.to_bytes(), resp.cryptogram)


def test_keystore_never_shows_the_master_key() -> None:
    assert "0123" not in repr(KEYS)
    with pytest.raises(ValueError):
        KeyStore(Settings(_env_file=None, onsite_issuer_master_key="00"))


def test_arqc_verifies_with_the_key_store_and_the_atc_rises() -> None:
    card = sim(atc=7)
    first = card.generate_ac(5_000, **TAP)
    second = card.generate_ac(5_000, **TAP)
    assert (first.kind, first.atc, second.atc) == ("ARQC", 8, 9)
    assert first.cid == emv.CID_ARQC and first.txn.atc == 8 and first.txn.aip == "7C00"
    assert verifies(first) and verifies(second)
    assert first.cryptogram != second.cryptogram  # a new session key per ATC
    other = CardSim(PAN, PSN, bytes(16))  # a card with the wrong key
    assert not verifies(other.generate_ac(5_000, **TAP))


def test_the_card_checks_the_issuers_arpc() -> None:
    card = sim()
    arqc = card.generate_ac(5_000, **TAP)
    good = KEYS.make_arpc(PAN, PSN, arqc.atc, arqc.cryptogram, emv.ARC_APPROVED)
    assert card.verify_arpc(good, emv.ARC_APPROVED)
    assert not card.verify_arpc(good, emv.ARC_DECLINED)
    tc = card.second_generate_ac(good, emv.ARC_APPROVED)
    assert (tc.kind, tc.atc) == ("TC", arqc.atc) and verifies(tc)
    assert tc.txn.cvr != arqc.txn.cvr
    with pytest.raises(CardSimError):  # the transaction is over
        card.second_generate_ac(good, emv.ARC_APPROVED)

    forged = bytes(8)
    card.generate_ac(5_000, **TAP)
    aac = card.second_generate_ac(forged, emv.ARC_APPROVED)
    assert aac.kind == "AAC" and verifies(aac) and aac.txn.cvr[4:6] == "04"

    arqc = card.generate_ac(5_000, **TAP)
    declined = KEYS.make_arpc(PAN, PSN, arqc.atc, arqc.cryptogram, emv.ARC_DECLINED)
    assert card.second_generate_ac(declined, emv.ARC_DECLINED).kind == "AAC"
    card.generate_ac(5_000, **TAP)
    assert card.second_generate_ac(None, emv.ARC_APPROVED).kind == "AAC"  # unable to go online


def test_ecash_load_script_applies_only_after_a_valid_arpc() -> None:
    card = sim(ecash_fen=1_000, ecash_limit_fen=10_000)
    arqc = card.generate_ac(2_000, txn_type="60", **TAP)
    arpc = KEYS.make_arpc(PAN, PSN, arqc.atc, arqc.cryptogram, emv.ARC_APPROVED)
    script = KEYS.ecash_load_script(PAN, PSN, arqc.atc, arqc.cryptogram, 3_000)
    assert card.second_generate_ac(arpc, emv.ARC_APPROVED, (script,)).kind == "TC"
    assert card.ecash_fen == 3_000
    # The same script replayed on a later transaction: wrong ATC and ARQC in its MAC.
    arqc2 = card.generate_ac(2_000, txn_type="60", **TAP)
    arpc2 = KEYS.make_arpc(PAN, PSN, arqc2.atc, arqc2.cryptogram, emv.ARC_APPROVED)
    card.second_generate_ac(arpc2, emv.ARC_APPROVED, (script,))
    assert card.ecash_fen == 3_000
    # A genuine script with a forged ARPC is not applied.
    arqc3 = card.generate_ac(2_000, txn_type="60", **TAP)
    script3 = KEYS.ecash_load_script(PAN, PSN, arqc3.atc, arqc3.cryptogram, 5_000)
    assert card.second_generate_ac(bytes(8), emv.ARC_APPROVED, (script3,)).kind == "AAC"
    assert card.ecash_fen == 3_000
    # Above the card's purse limit: ignored.
    arqc4 = card.generate_ac(2_000, txn_type="60", **TAP)
    arpc4 = KEYS.make_arpc(PAN, PSN, arqc4.atc, arqc4.cryptogram, emv.ARC_APPROVED)
    over = KEYS.ecash_load_script(PAN, PSN, arqc4.atc, arqc4.cryptogram, 10_001)
    card.second_generate_ac(arpc4, emv.ARC_APPROVED, (over,))
    assert card.ecash_fen == 3_000


@given(purse=st.integers(0, 100_000), fares=st.lists(st.integers(1, 20_000), max_size=20))
def test_offline_purchases_are_limited_by_the_purse(purse: int, fares: list[int]) -> None:
    card = sim(ecash_fen=purse)
    spent = 0
    for fare in fares:
        resp = card.offline_purchase(fare, **TAP)
        if fare <= purse - spent:
            assert resp.kind == "TC"
            spent += fare
        else:
            assert resp.kind == "AAC"
        assert verifies(resp) and resp.txn.amount_fen == fare
        assert card.ecash_fen == purse - spent >= 0
    assert card.atc == len(fares)


def test_a_locked_applet_declines_everything() -> None:
    card = sim(ecash_fen=10_000)
    card.lock()
    assert card.generate_ac(100, **TAP).kind == "AAC"
    assert card.offline_purchase(100, **TAP).kind == "AAC" and card.ecash_fen == 10_000
    with pytest.raises(CardSimError):
        card.second_generate_ac(bytes(8), emv.ARC_APPROVED)
    card.unlock()
    assert card.offline_purchase(100, **TAP).kind == "TC"


def test_the_atc_runs_out() -> None:
    card = sim(atc=0xFFFE)
    assert card.generate_ac(1, **TAP).atc == 0xFFFF
    with pytest.raises(CardSimError):
        card.generate_ac(1, **TAP)
