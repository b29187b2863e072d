"""One error class per way the ledger refuses a transfer, each with a stable code."""

from __future__ import annotations

from paycell.errors import ConflictError, InvalidRequestError, NotFoundError, PaycellError


class LedgerError(PaycellError):
    code = "ledger_error"


class TransferIdInvalidError(LedgerError, InvalidRequestError):
    code = "transfer_id_invalid"


class FlagsInvalidError(LedgerError, InvalidRequestError):
    code = "flags_invalid"


class AmountNotPositiveError(LedgerError, InvalidRequestError):
    code = "amount_must_be_positive"


class SameAccountError(LedgerError, InvalidRequestError):
    code = "accounts_must_be_different"


class TimeoutInvalidError(LedgerError, InvalidRequestError):
    code = "timeout_invalid"


class AccountNotFoundError(LedgerError, NotFoundError):
    code = "account_not_found"


class LedgerMismatchError(LedgerError, InvalidRequestError):
    code = "ledger_mismatch"


class AccountClosedError(LedgerError, ConflictError):
    code = "account_closed"


class AccountOverdraftError(LedgerError, ConflictError):
    """The debit would take the account below zero (holds count against it)."""

    code = "overdraft"


class AccountCreditLimitError(LedgerError, ConflictError):
    """The credit would take a debit-normal account below zero."""

    code = "credits_exceed_debits"


class PendingTransferNotFoundError(LedgerError, NotFoundError):
    code = "pending_transfer_not_found"


class PendingTransferMismatchError(LedgerError, InvalidRequestError):
    code = "pending_transfer_mismatch"


class PendingAlreadyPostedError(LedgerError, ConflictError):
    code = "pending_already_posted"


class PendingAlreadyVoidedError(LedgerError, ConflictError):
    code = "pending_already_voided"


class PendingExpiredError(LedgerError, ConflictError):
    code = "pending_expired"


class PostExceedsPendingError(LedgerError, InvalidRequestError):
    code = "post_exceeds_pending"


class TransferIdConflictError(LedgerError, ConflictError):
    """The id was used before for a transfer with a different body."""

    code = "transfer_id_conflict"

    def __init__(self, transfer_id: str, field: str) -> None:
        super().__init__(
            f"transfer {transfer_id!r} exists with a different {field}; "
            "use a new id for a new transfer",
            field=field,
        )
        self.field = field


class LinkedEventFailedError(LedgerError, ConflictError):
    code = "linked_event_failed"


class LinkedChainOpenError(LedgerError, InvalidRequestError):
    code = "linked_event_chain_open"


class AccountExistsError(LedgerError, ConflictError):
    code = "account_exists_with_different_fields"


class AccountHasHoldsError(LedgerError, ConflictError):
    code = "account_has_pending_holds"
