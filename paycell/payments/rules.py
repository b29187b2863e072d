"""Pure decisions about payment orders: the state machine, refunds, retried requests.

No I/O and no clock: callers pass what they know. The state machine is one table,
``TRANSITIONS[state][action] -> next state``; anything not in it is refused with
:class:`OrderStateError`, so there is no other place where a state changes.
"""

from __future__ import annotations

from typing import Any

from paycell.payments.errors import (
    EscrowPartialRefundError,
    OrderStateError,
    RefundExceedsPaidError,
)

WAITING, PAID, HELD, RELEASED, DISPUTED = "waiting", "paid", "held", "released", "disputed"
CLOSED, PARTIALLY_REFUNDED, REFUNDED = "closed", "partially_refunded", "refunded"
STATES = (WAITING, PAID, HELD, RELEASED, DISPUTED, CLOSED, PARTIALLY_REFUNDED, REFUNDED)

TRANSITIONS: dict[str, dict[str, str]] = {
    WAITING: {"pay": PAID, "hold": HELD, "close": CLOSED, "expire": CLOSED},
    PAID: {"refund_part": PARTIALLY_REFUNDED, "refund_all": REFUNDED},
    PARTIALLY_REFUNDED: {"refund_part": PARTIALLY_REFUNDED, "refund_all": REFUNDED},
    HELD: {"release": RELEASED, "auto_release": RELEASED, "dispute": DISPUTED,
           "refund_all": REFUNDED},
    RELEASED: {"refund_part": PARTIALLY_REFUNDED, "refund_all": REFUNDED},
    DISPUTED: {"resolve_refund": REFUNDED, "resolve_release": RELEASED,
               "resolve_split": PARTIALLY_REFUNDED},
    CLOSED: {},
    REFUNDED: {},
}
# States in which the merchant has been paid (or the money is held for it): notifications
# tell the merchant to deliver from these on.
PAID_STATES = frozenset({PAID, HELD, RELEASED, DISPUTED, PARTIALLY_REFUNDED, REFUNDED})
FINAL_STATES = frozenset(s for s, moves in TRANSITIONS.items() if not moves)

ACTION_WORDS = {
    "pay": "pay", "hold": "pay", "close": "close", "expire": "expire",
    "refund_part": "refund", "refund_all": "refund", "release": "release",
    "auto_release": "release", "dispute": "dispute", "resolve_refund": "resolve",
    "resolve_release": "resolve", "resolve_split": "resolve",
}


def next_state(state: str, action: str) -> str:
    """The state ``action`` leads to from ``state``; :class:`OrderStateError` if none."""
    target = TRANSITIONS.get(state, {}).get(action)
    if target is None:
        verb = ACTION_WORDS.get(action, action)
        raise OrderStateError(f"an order that is {state.replace('_', ' ')} cannot {verb}",
                              state=state, action=action)
    return target


def pay_action(kind: str) -> str:
    return "hold" if kind == "escrow" else "pay"


def refund_action(state: str, amount_fen: int, refunded_fen: int, refund_fen: int) -> str:
    """``refund_part`` or ``refund_all`` for refunding ``refund_fen`` more of an order of
    ``amount_fen`` of which ``refunded_fen`` went back already. Never more than was paid:
    :class:`RefundExceedsPaidError` (``refundable_fen``); an escrow hold is refunded only
    whole (:class:`EscrowPartialRefundError`)."""
    left = amount_fen - refunded_fen
    if refund_fen > left:
        raise RefundExceedsPaidError(
            f"only {left} fen of this order can still be refunded", refundable_fen=left)
    action = "refund_all" if refund_fen == left else "refund_part"
    if state == HELD and action != "refund_all":
        raise EscrowPartialRefundError(
            "the money is still held in escrow: refund all of it, or release it first",
            refundable_fen=left)
    next_state(state, action)
    return action


def split_action(amount_fen: int, buyer_fen: int) -> str:
    """The dispute outcome for giving ``buyer_fen`` back and the rest to the merchant."""
    if buyer_fen == amount_fen:
        return "resolve_refund"
    if buyer_fen == 0:
        return "resolve_release"
    return "resolve_split"


def first_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """The first field (sorted) whose value differs between two create requests."""
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return key
    return None


def summary_text(merchant_name: str, subject: str, amount: str, code: str,
                 minutes: int) -> str:
    """The SMS asking a subscriber to confirm an order."""
    return (f"{merchant_name} asks you to pay {amount} CNY for \"{subject[:40]}\". "
            f"Reply {code} within {minutes} min to pay from your paycell balance, "
            "or confirm in the app. Ignore this text to decline.")
