"""The channel partners' refusals, each with a stable ``code`` (mapped to HTTP in ``api/``)."""

from __future__ import annotations

from paycell.errors import ConflictError, InvalidRequestError, NotFoundError


class PartnerNotFoundError(NotFoundError):
    code = "partner_not_found"


class PartnerInvalidError(InvalidRequestError):
    """A field (``field``) is not acceptable, e.g. an expansion fee outside 200-2,000 CNY."""

    code = "partner_invalid"


class PartnerStateError(ConflictError):
    """The partner's ``state`` does not allow this (e.g. attaching to a pending partner)."""

    code = "partner_state_invalid"


class MerchantAttachedError(ConflictError):
    """The merchant belongs to another partner (``partner``): detach it there first."""

    code = "merchant_already_attached"


class TerminalAttachedError(ConflictError):
    """The terminal belongs to another partner (``partner``): detach it there first."""

    code = "terminal_already_attached"


class NotAttachedError(ConflictError):
    """Detaching what is not attached to this partner."""

    code = "not_attached"


class MonthInvalidError(InvalidRequestError):
    code = "month_invalid"


class MonthNotOverError(ConflictError):
    """A month is accrued only once it is over (``ends_at``)."""

    code = "month_not_over"
