"""The refusals of cards, top-ups and withdrawals, each with a stable ``code``."""

from __future__ import annotations

from paycell.api.errors import ServiceUnavailableError
from paycell.errors import ConflictError, InvalidRequestError, NotFoundError


class CardNumberInvalidError(InvalidRequestError):
    """Not 13 to 19 digits with a right Luhn check digit."""

    code = "card_number_invalid"


class CardNotFoundError(NotFoundError):
    """No such card among the caller's own (another subscriber's card is not found either)."""

    code = "card_not_found"


class CardStateError(ConflictError):
    """The card is not in a state for this (confirming an active card, paying with one not
    yet verified...)."""

    code = "card_state_invalid"


class CardRejectedError(ConflictError):
    """The bank refused the card (``reason``: card_blocked, too_many_attempts, ...)."""

    code = "card_rejected"


class CardCodeInvalidError(InvalidRequestError):
    """The SMS code does not match (``tries_left`` before the bank gives up)."""

    code = "card_code_invalid"


class NoDefaultCardError(InvalidRequestError):
    """No card given and no default card bound."""

    code = "no_default_card"


class BankUnavailableError(ServiceUnavailableError):
    """The bank did not answer (or none is configured); nothing was done, try again."""

    code = "bank_unavailable"


class CarrierUnavailableError(ServiceUnavailableError):
    """No carrier billing system is configured."""

    code = "carrier_unavailable"


class TopupNotFoundError(NotFoundError):
    code = "topup_not_found"


class WithdrawalNotFoundError(NotFoundError):
    code = "withdrawal_not_found"


class PhoneBillCapExceededError(ConflictError):
    """Over the monthly cap of top-ups charged to the phone bill (``cap_fen``,
    ``remaining_fen``)."""

    code = "phone_bill_cap_exceeded"


class InsufficientBalanceError(ConflictError):
    """The wallet's available balance does not cover the amount and the fee
    (``available_fen``, ``needed_fen``)."""

    code = "insufficient_balance"


class CursorInvalidError(InvalidRequestError):
    code = "cursor_invalid"
