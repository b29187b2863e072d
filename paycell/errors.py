"""Base classes for business errors. Each has a stable ``code``; ``api/`` maps kinds to HTTP."""

from __future__ import annotations


class PaycellError(Exception):
    """A refusal the caller can act on. ``code`` is stable; the message is for people."""

    code = "error"

    def __init__(self, message: str | None = None, **detail: object) -> None:
        super().__init__(message or self.code.replace("_", " "))
        self.detail = detail

    @property
    def message(self) -> str:
        return str(self)


class NotFoundError(PaycellError):
    code = "not_found"


class ConflictError(PaycellError):
    code = "conflict"


class InvalidRequestError(PaycellError):
    code = "invalid_request"


class ForbiddenError(PaycellError):
    code = "forbidden"


class UnauthorizedError(PaycellError):
    code = "unauthorized"
