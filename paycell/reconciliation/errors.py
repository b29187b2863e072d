"""Reconciliation refusals, each with a stable ``code`` (4xx problem+json over the API)."""

from __future__ import annotations

from paycell.errors import ConflictError, ForbiddenError, InvalidRequestError, NotFoundError


class StatementInvalidError(InvalidRequestError):
    """The file is not a statement in the documented format: ``line`` (1-based) and
    ``field`` say where. Nothing was imported."""

    code = "statement_invalid"


class StatementEncodingError(InvalidRequestError):
    """The bytes are neither UTF-8 nor GBK (or not the ``--encoding`` given)."""

    code = "statement_encoding_invalid"


class StatementSourceMismatchError(InvalidRequestError):
    code = "statement_source_mismatch"


class StatementNotFoundError(NotFoundError):
    code = "statement_not_found"


class CustodyReserveShortError(ConflictError):
    """Posting the statement would take the custody reserve below zero: import the
    statements that bring money in first."""

    code = "custody_reserve_short"


class ReconItemNotFoundError(NotFoundError):
    code = "recon_item_not_found"


class ReconItemResolvedError(ConflictError):
    code = "recon_item_resolved"


class ReconResolutionInvalidError(InvalidRequestError):
    code = "recon_resolution_invalid"


class BillDateInvalidError(InvalidRequestError):
    code = "bill_date_invalid"


class BillDateNotOverError(ConflictError):
    code = "bill_date_not_over"


class BillForbiddenError(ForbiddenError):
    code = "bill_forbidden"
