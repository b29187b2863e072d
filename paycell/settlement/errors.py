"""The settlement refusals, each with a stable ``code`` (docs/settlement.md)."""

from __future__ import annotations

from paycell.errors import ConflictError, InvalidRequestError, NotFoundError


class SettlementInvalidError(InvalidRequestError):
    """A bad argument (``field`` says which): a date, an amount, a reason."""

    code = "settlement_invalid"


class BusinessDateOpenError(ConflictError):
    """The business date is not over yet (its cut-off plus the grace period is ahead)."""

    code = "business_date_open"


class BusinessDateClearedError(ConflictError):
    """The date is cleared already: a deduction for it comes too late."""

    code = "business_date_cleared"


class BusinessDateNotClearedError(ConflictError):
    """Payouts for a date wait until the date is cleared."""

    code = "business_date_not_cleared"


class ClearingNotFoundError(NotFoundError):
    code = "clearing_not_found"


class PayoutFileInvalidError(InvalidRequestError):
    """A bank result file that is not in the documented format (``line`` says where)."""

    code = "payout_result_invalid"


class PayoutNotFoundError(NotFoundError):
    code = "payout_not_found"


class PayoutResultConflictError(ConflictError):
    """The result file says something else about a payout than an earlier one did."""

    code = "payout_result_conflict"


class HoldNotFoundError(NotFoundError):
    code = "payout_hold_not_found"


class BatchNotFoundError(NotFoundError):
    code = "payout_batch_not_found"
