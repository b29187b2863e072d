"""Refusals of the payment-order use cases, each with a stable ``code``."""

from __future__ import annotations

from paycell.errors import ConflictError, ForbiddenError, InvalidRequestError, NotFoundError


class OrderNotFoundError(NotFoundError):
    """No such order for this caller (another merchant's order is "not found" too)."""

    code = "order_not_found"


class OutTradeNoConflictError(ConflictError):
    """The merchant's ``out_trade_no`` was used before with a different request
    (``field`` names the first difference)."""

    code = "out_trade_no_conflict"


class OrderStateError(ConflictError):
    """The order's state does not allow this (``state``, ``action``)."""

    code = "order_state_invalid"


class OrderExpiredError(ConflictError):
    code = "order_expired"


class RefundExceedsPaidError(ConflictError):
    """More would be refunded than was paid (``refundable_fen`` says how much is left)."""

    code = "refund_exceeds_paid"


class OutRequestNoConflictError(ConflictError):
    code = "out_request_no_conflict"


class PayerNotFoundError(InvalidRequestError):
    """No active wallet holds the payer's number."""

    code = "payer_not_found"


class PaymentInvalidError(InvalidRequestError):
    code = "payment_invalid"


class InsufficientBalanceError(ConflictError):
    """The wallet's available balance does not cover the payment (``available_fen``)."""

    code = "insufficient_balance"


class MerchantBalanceInsufficientError(ConflictError):
    """The merchant's payable balance cannot cover the refund (already settled out)."""

    code = "merchant_balance_insufficient"


class FundingFailedError(ConflictError):
    """The card or phone-bill charge paying for the order was refused (``reason``)."""

    code = "funding_failed"


class EscrowPartialRefundError(ConflictError):
    """While escrow holds the money only a full refund is possible (or release first)."""

    code = "escrow_partial_refund"


class NotOrderPayerError(ForbiddenError):
    code = "not_order_payer"


class DisputeNotFoundError(NotFoundError):
    code = "dispute_not_found"


class DisputeSplitInvalidError(InvalidRequestError):
    code = "dispute_split_invalid"


class SmsCodeInvalidError(ForbiddenError):
    """The texted code is wrong (``tries_left``), expired or used up."""

    code = "sms_code_invalid"


class MerchantNotPayableError(ConflictError):
    """The merchant cannot take payments (not active)."""

    code = "merchant_not_payable"
