"""The subscribers' refusals, each with a stable ``code`` (mapped to HTTP in ``api/``)."""

from __future__ import annotations

from paycell.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PaycellError,
    UnauthorizedError,
)


class SubscriberError(PaycellError):
    code = "subscriber_error"


class InvalidMsisdnError(SubscriberError, InvalidRequestError):
    code = "invalid_msisdn"


class MsisdnRegisteredError(SubscriberError, ConflictError):
    code = "msisdn_registered"


class SubscriberNotFoundError(SubscriberError, NotFoundError):
    code = "subscriber_not_found"


class PinTrivialError(SubscriberError, InvalidRequestError):
    """Not six digits, or too easy to guess (a run, a repeat, the MSISDN's tail...)."""

    code = "pin_trivial"


class PinInvalidError(SubscriberError, ForbiddenError):
    """A wrong PIN; ``remaining_tries`` says how many before PIN use is locked."""

    code = "pin_invalid"


class PinLockedError(SubscriberError, ForbiddenError):
    """Too many wrong PINs: PIN use (login, money out) is locked until ``locked_until``."""

    code = "pin_locked"


class CredentialsInvalidError(SubscriberError, UnauthorizedError):
    """Login: no open wallet for this MSISDN, or a wrong PIN."""

    code = "credentials_invalid"


class SubscriberFrozenError(SubscriberError, ConflictError):
    code = "subscriber_frozen"


class SubscriberClosedError(SubscriberError, ConflictError):
    code = "subscriber_closed"


class SubscriberStateError(SubscriberError, ConflictError):
    """The action does not apply in the subscriber's present state (e.g. freeze twice)."""

    code = "subscriber_state_invalid"


class LimitExceededError(SubscriberError, ConflictError):
    """An outflow over the tier's per-transaction, daily or monthly limit (``limit``,
    ``limit_fen`` and ``remaining_fen`` in the problem)."""

    code = "limit_exceeded"


class BalanceCapExceededError(SubscriberError, ConflictError):
    """An inflow that would take the wallet over its tier's balance cap."""

    code = "balance_cap_exceeded"


class AccountHasPendingHoldsError(SubscriberError, ConflictError):
    """Close refused: money is still held on (or for) the wallet."""

    code = "account_has_pending_holds"


class ClosePayoutPendingError(SubscriberError, ConflictError):
    """The payout of a closing wallet did not leave it empty; close again once it settles."""

    code = "close_payout_pending"


class IdNumberInvalidError(SubscriberError, InvalidRequestError):
    code = "id_number_invalid"


class TierInvalidError(SubscriberError, InvalidRequestError):
    code = "tier_invalid"


class CodeInvalidError(SubscriberError, InvalidRequestError):
    """A wrong, expired or used-up one-time code (``remaining_tries`` when it still lives)."""

    code = "code_invalid"


class TokenMissingError(SubscriberError, UnauthorizedError):
    code = "authentication_required"


class TokenInvalidError(SubscriberError, UnauthorizedError):
    code = "token_invalid"


class TokenExpiredError(SubscriberError, UnauthorizedError):
    code = "token_expired"
