"""The merchants' refusals, each with a stable ``code`` (mapped to HTTP in ``api/``).

Signed-request failures are 401s whose codes say exactly why (docs/merchant-api.md)."""

from __future__ import annotations

from paycell.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    UnauthorizedError,
)


class MerchantNotFoundError(NotFoundError):
    code = "merchant_not_found"


class MerchantInvalidError(InvalidRequestError):
    """A field of an application (``field``) is not acceptable."""

    code = "merchant_invalid"


class MerchantStateError(ConflictError):
    """The merchant's ``state`` does not allow this ``action``."""

    code = "merchant_state_invalid"


class MerchantNotActiveError(ForbiddenError):
    """A suspended, terminated (or not yet active) merchant signed a request."""

    code = "merchant_not_active"


class StoreNotFoundError(NotFoundError):
    code = "store_not_found"


class StoreCodeTakenError(ConflictError):
    code = "store_code_taken"


class CredentialNotFoundError(NotFoundError):
    code = "credential_not_found"


class CredentialInvalidError(InvalidRequestError):
    code = "credential_invalid"


class CredentialLastActiveError(ConflictError):
    """Revoking this would leave the merchant no way to sign requests."""

    code = "credential_last_active"


class CredentialLimitError(ConflictError):
    code = "credential_limit_reached"


# -- signed requests (401 unless said otherwise) --------------------------------------------
class MerchantAuthenticationRequiredError(UnauthorizedError):
    """No ``X-Paycell-Key-Id``: the request is not signed at all."""

    code = "authentication_required"


class SignatureHeaderMissingError(UnauthorizedError):
    """One of the signing headers (``header``) is missing."""

    code = "signature_header_missing"


class SignatureHeaderInvalidError(UnauthorizedError):
    """A signing header (``header``) is malformed."""

    code = "signature_header_invalid"


class KeyUnknownError(UnauthorizedError):
    code = "key_unknown"


class KeyRevokedError(UnauthorizedError):
    code = "key_revoked"


class TimestampStaleError(UnauthorizedError):
    """The timestamp is outside the window, in the past or the future (``server_time``)."""

    code = "timestamp_stale"


class NonceReplayedError(UnauthorizedError):
    code = "nonce_replayed"


class DigestMismatchError(UnauthorizedError):
    """``X-Paycell-Content-SHA256`` is not the SHA-256 of the body received."""

    code = "digest_mismatch"


class SignatureMismatchError(UnauthorizedError):
    code = "signature_mismatch"
