"""A simulated NFC payment applet that answers like a PBOC 2.0 / qPBOC card: the POS and gate
simulators, the demo and the tests tap it.

GENERATE AC: the terminal sends its part of CDOL1 (amount, other amount, country, TVR,
currency, date, transaction type, unpredictable number) and the cryptogram it asks for; the
card adds its AIP, its incremented ATC and its CVR, decides (it may only downgrade: ARQC
asked -> ARQC or AAC; TC asked -> TC, or AAC when the purse cannot pay), and MACs the data
under its session key. Online, the second GENERATE AC takes the issuer's ARPC and response
code: a valid ARPC with approval gives a TC, anything else an AAC; an issuer script (the
e-cash load's PUT DATA 9F79) is applied only after the ARPC verified and only if its MAC is
right. Offline e-cash purchases (TC) debit the purse and never go below zero.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace

from paycell.onsite import emv
from paycell.onsite.keystore import KeyStore

AIP = "7C00"  # SDA, DDA, cardholder verification, terminal risk management supported
KINDS = {emv.CID_AAC: "AAC", emv.CID_TC: "TC", emv.CID_ARQC: "ARQC"}


class CardSimError(Exception):
    """The simulated card refuses the command (wrong sequence, blocked applet)."""


@dataclass(frozen=True)
class AcResponse:
    """The card's answer to GENERATE AC: CID (9F27), ATC (9F36), the cryptogram (9F26) and
    the full data it covers, which the terminal forwards online or in a batch."""

    cid: int
    atc: int
    cryptogram: bytes
    txn: emv.TxnData

    @property
    def kind(self) -> str:
        return KINDS[self.cid]


class CardSim:
    def __init__(self, pan: str, psn: str, card_key: bytes, atc: int = 0,
                 ecash_fen: int = 0, *, ecash_limit_fen: int = 100_000) -> None:
        self.pan = pan
        self.psn = psn
        self._key = card_key
        self.atc = atc
        self.ecash_fen = ecash_fen
        self.ecash_limit_fen = ecash_limit_fen
        self.blocked = False  # applet locked (OTA lock, or a card-side block)
        self._pending: AcResponse | None = None  # the ARQC awaiting the issuer's answer

    @classmethod
    def personalised(cls, keystore: KeyStore, pan: str, psn: str, **kw: int) -> CardSim:
        """A card personalised with its key from the key store, as the OTA job does."""
        return cls(pan, psn, keystore.card_key_for_personalisation(pan, psn), **kw)

    # -- applet management (OTA) -----------------------------------------------------------
    def lock(self) -> None:
        self.blocked = True
        self._pending = None

    def unlock(self) -> None:
        self.blocked = False

    # -- GENERATE AC -----------------------------------------------------------------------
    def generate_ac(self, amount_fen: int, *, unpredictable: str, date: str,
                    requested: int = emv.CID_ARQC, txn_type: str = "00", other_fen: int = 0,
                    country: str = "0156", currency: str = "0156",
                    tvr: str = "0000000000") -> AcResponse:
        """The first GENERATE AC. Every call uses up one ATC, whatever it answers."""
        if self.atc >= 0xFFFF:
            raise CardSimError("the ATC is exhausted: the card is dead")
        self.atc += 1
        self._pending = None
        if self.blocked or requested == emv.CID_AAC:
            cid = emv.CID_AAC
        elif requested == emv.CID_TC:
            # Offline is for e-cash purchases the purse can pay; else decline offline.
            payable = txn_type == "00" and 0 <= amount_fen <= self.ecash_fen
            cid = emv.CID_TC if payable else emv.CID_AAC
        else:
            cid = emv.CID_ARQC
        # CVR byte 2: bits 8-7 the 2nd AC (10: not requested), bits 6-5 the 1st AC type.
        first = {emv.CID_AAC: 0x00, emv.CID_TC: 0x10, emv.CID_ARQC: 0x20}[cid]
        txn = emv.TxnData(amount_fen=amount_fen, other_fen=other_fen, country=country,
                          tvr=tvr, currency=currency, date=date, txn_type=txn_type,
                          unpredictable=unpredictable, aip=AIP, atc=self.atc,
                          cvr=f"03{0x80 | first:02X}0000")
        resp = self._answer(cid, txn)
        if cid == emv.CID_TC:
            self.ecash_fen -= amount_fen
        elif cid == emv.CID_ARQC:
            self._pending = resp
        return resp

    def offline_purchase(self, amount_fen: int, *, unpredictable: str, date: str
                         ) -> AcResponse:
        """An e-cash purchase at a gate: a TC if the purse covers it (and it is debited),
        an AAC otherwise."""
        return self.generate_ac(amount_fen, unpredictable=unpredictable, date=date,
                                requested=emv.CID_TC)

    def second_generate_ac(self, arpc: bytes | None, arc: bytes,
                           scripts: tuple[bytes, ...] = ()) -> AcResponse:
        """Complete the online transaction of the last ARQC with the issuer's answer: TC if
        the ARPC is the issuer's for that ARQC and ``arc`` approves, AAC otherwise (no ARPC:
        the terminal could not reach the issuer). Scripts run only after a valid ARPC."""
        pending = self._pending
        if pending is None:
            raise CardSimError("no online transaction is waiting for the issuer's answer")
        self._pending = None
        sk = emv.session_key(self._key, pending.atc)
        authentic = arpc is not None and hmac.compare_digest(
            emv.arpc(sk, pending.cryptogram, arc), arpc)
        approved = authentic and arc == emv.ARC_APPROVED
        if authentic:
            for script in scripts:
                self._apply_script(sk, pending, script)
        # CVR byte 2: 2nd AC TC (01) or AAC (00), 1st ARQC (10); byte 3 bit 3: issuer
        # authentication failed.
        second = 0x40 if approved else 0x00
        failed = 0x00 if authentic else 0x04
        txn = replace(pending.txn, cvr=f"03{second | 0x20:02X}{failed:02X}00")
        return self._answer(emv.CID_TC if approved else emv.CID_AAC, txn)

    def verify_arpc(self, arpc: bytes, arc: bytes) -> bool:
        """Whether ``arpc`` is the issuer's answer to the pending ARQC (without using it)."""
        if self._pending is None:
            return False
        sk = emv.session_key(self._key, self._pending.atc)
        return hmac.compare_digest(emv.arpc(sk, self._pending.cryptogram, arc), arpc)

    def _apply_script(self, sk: bytes, pending: AcResponse, script: bytes) -> None:
        balance = emv.parse_ecash_script(sk, pending.atc, pending.cryptogram, script)
        if balance is None or balance > self.ecash_limit_fen:
            return  # a card ignores a script it cannot authenticate or that breaks a limit
        self.ecash_fen = balance

    def _answer(self, cid: int, txn: emv.TxnData) -> AcResponse:
        sk = emv.session_key(self._key, txn.atc)
        return AcResponse(cid, txn.atc, emv.generate_ac(sk, txn.to_bytes()), txn)
