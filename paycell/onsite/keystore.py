"""The key store: the only place the issuer master key is held in clear.

Everything else asks it questions ("is this cryptogram right?", "what is the ARPC?") and
gets answers, never keys: a card's key leaves only for personalisation (the OTA personalise
job writes it into the SIM applet, the card simulator stands for that applet in tests and
the demo). In production this class is the boundary a hardware security module would sit
behind; here it holds the key in memory, loaded from ``settings.onsite_issuer_master_key``.
"""

from __future__ import annotations

import functools
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from paycell.config import Settings
from paycell.onsite import emv


class KeyStore:
    def __init__(self, settings: Settings) -> None:
        try:
            key = bytes.fromhex(settings.onsite_issuer_master_key)
        except ValueError as exc:
            raise ValueError("PAYCELL_ONSITE_ISSUER_MASTER_KEY must be hex") from exc
        if len(key) != 16:
            raise ValueError("PAYCELL_ONSITE_ISSUER_MASTER_KEY must be 16 bytes (32 hex)")
        self.__imk = key

    def __repr__(self) -> str:  # never print the key
        return "KeyStore(<issuer master key>)"

    def ota_master_key(self) -> bytes:
        """The OTA master key: HKDF-SHA256 of the issuer master key (info
        ``paycell-ota-master-v1``), one way, so no OTA key reveals the issuer's. Each SIM's
        keys are derived from it and the ICCID (``sim_applet.derive_sim_keys``)."""
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"paycell-ota",
                    info=b"paycell-ota-master-v1").derive(self.__imk)

    def _card_key(self, pan: str, psn: str) -> bytes:
        return _card_key(self.__imk, pan, psn)

    def card_session_key(self, pan: str, psn: str, atc: int) -> bytes:
        """The card's session key for this ATC (for callers that compute several things
        under it, e.g. an ARPC after a verified ARQC)."""
        return _session_key(self._card_key(pan, psn), atc)


    def verify_cryptogram(self, pan: str, psn: str, atc: int, data: bytes,
                          cryptogram: bytes) -> bool:
        """Whether ``cryptogram`` (ARQC, TC or AAC) is the card's over ``data`` at ``atc``;
        compared in constant time. A malformed PAN/PSN is simply not verified."""
        try:
            expected = emv.generate_ac(self.card_session_key(pan, psn, atc), data)
        except ValueError:
            return False
        return hmac.compare_digest(expected, cryptogram)

    def make_arpc(self, pan: str, psn: str, atc: int, arqc: bytes, arc: bytes) -> bytes:
        """The ARPC (method 1) answering ``arqc`` with the response code ``arc``."""
        return emv.arpc(self.card_session_key(pan, psn, atc), arqc, arc)

    def ecash_load_script(self, pan: str, psn: str, atc: int, arqc: bytes,
                          new_balance_fen: int) -> bytes:
        """The issuer script (PUT DATA 9F79, MACed) that sets the card's e-cash balance, sent
        with the ARPC of an e-cash load."""
        return emv.ecash_load_script(self.card_session_key(pan, psn, atc), atc, arqc,
                                     new_balance_fen)

    def card_key_for_personalisation(self, pan: str, psn: str) -> bytes:
        """The card's own key, to be written into its applet. Only the OTA personalise job
        and the card simulator's issuance call this."""
        return self._card_key(pan, psn)


# Derived keys, remembered per process: a tap derives its card's key and its session key
# once to verify the ARQC and again for the ARPC, each derivation a few 3DES operations.
# The tap's cryptography was about 7% of the API's CPU under the HTTP benchmark; remembered,
# the platform's part of a tap takes half the time (100 against 207 µs, measured with the
# card's side included). Both are functions of their arguments only, and the issuer master
# key they come from is in memory anyway.
@functools.lru_cache(maxsize=65_536)
def _card_key(imk: bytes, pan: str, psn: str) -> bytes:
    return emv.derive_card_key(imk, pan, psn)


@functools.lru_cache(maxsize=4_096)
def _session_key(card_key: bytes, atc: int) -> bytes:
    return emv.session_key(card_key, atc)
