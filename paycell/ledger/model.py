"""The ledger's rules, pure: no I/O, no clock reads (``now_us`` is passed in).

:func:`decide` applies a batch of transfer requests to in-memory account and hold states in
order, TigerBeetle style: each request succeeds or fails on its own, except that a chain of
``LINKED`` requests succeeds or fails as a whole. The store loads the states, calls
:func:`decide`, and writes what it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntFlag

from paycell.ledger import errors as e


class AccountFlags(IntFlag):
    NONE = 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1  # credit-normal: wallets, payables (never below zero)
    CREDITS_MUST_NOT_EXCEED_DEBITS = 2  # debit-normal: an agent's float, a reserve
    CLOSED = 4


class TransferFlags(IntFlag):
    NONE = 0
    LINKED = 1  # this request and the next succeed or fail together
    PENDING = 2  # reserve now (a hold), settle later
    POST_PENDING = 4  # settle a hold, possibly for less: the rest is released
    VOID_PENDING = 8  # release a hold


# Plain ints for the hot path: IntFlag arithmetic builds a new object on every '&'.
LINKED, PENDING, POST, VOID = 1, 2, 4, 8
TWO_PHASE = POST | VOID
CLOSED, DR_LIMIT, CR_LIMIT = 4, 1, 2
_ONE_PHASE = (0, PENDING, POST, VOID)
MAX_ID_LEN = 200


# Not frozen: a frozen dataclass pays object.__setattr__ per field on construction, 8x
# the cost, several times per transfer on the hot path. Treat these records as immutable;
# the journal's immutability is enforced by the database (trigger, hash chain).
@dataclass(slots=True)
class TransferRequest:
    """What a caller asks the ledger to do. ``id`` is the caller's idempotency key.

    For ``POST_PENDING``/``VOID_PENDING`` the accounts and ledger may be left out (0/None):
    they come from the hold. ``amount=None`` posts the full hold.
    """

    id: str
    debit_account_id: int = 0
    credit_account_id: int = 0
    amount: int | None = None
    ledger: str | None = "CNY"
    code: int = 0
    flags: int = 0
    pending_id: str | None = None
    timeout: int = 0
    ref: str | None = None


@dataclass(slots=True)
class Transfer:
    """A transfer as written to the journal. Immutable."""

    id: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    ledger: str
    code: int
    flags: int
    pending_id: str | None
    timeout: int
    ref: str | None
    timestamp: int
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""


@dataclass(slots=True)
class AccountState:
    id: int
    ledger: str
    flags: int
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    def counters(self) -> tuple[int, int, int, int]:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)


@dataclass(slots=True)
class HoldState:
    transfer_id: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    ledger: str
    status: str  # pending | posted | voided | expired
    expires_at: int | None
    resolved_by: str | None = None


@dataclass(slots=True)
class TransferResult:
    id: str
    status: str  # created | exists | failed
    transfer: Transfer | None = None
    error: e.LedgerError | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def unwrap(self) -> Transfer:
        """The transfer, or the typed error raised."""
        if self.error is not None:
            raise self.error
        assert self.transfer is not None
        return self.transfer


@dataclass(slots=True)
class Decision:
    """What :func:`decide` wants written: new transfers and every changed hold."""

    results: list[TransferResult]
    created: list[Transfer] = field(default_factory=list)
    holds_new: list[HoldState] = field(default_factory=list)
    holds_changed: list[HoldState] = field(default_factory=list)


def usable_key(key: object) -> bool:
    """Whether ``key`` can be looked up at all (a malformed one is refused later)."""
    return isinstance(key, str) and 0 < len(key) <= MAX_ID_LEN and "\x00" not in key


def expires_at(now_us: int, timeout_s: int) -> int | None:
    return now_us + timeout_s * 1_000_000 if timeout_s else None


def differing_field(
    req: TransferRequest, old: Transfer, hold_amount: int | None = None,
) -> str | None:
    """The first field in which a retried request differs from the stored transfer.

    A post that leaves out its amount asks for the whole hold (``hold_amount``), so it
    differs from an earlier partial post with the same id.
    """
    checks: list[tuple[str, object, object]] = [
        ("flags", req.flags, old.flags),
        ("pending_id", req.pending_id, old.pending_id),
        ("code", req.code, old.code),
        ("ref", req.ref, old.ref),
    ]
    two_phase = bool(req.flags & TWO_PHASE)
    # Two-phase requests may leave accounts, ledger and amount to the hold.
    if not two_phase or req.debit_account_id:
        checks.append(("debit_account_id", req.debit_account_id, old.debit_account_id))
    if not two_phase or req.credit_account_id:
        checks.append(("credit_account_id", req.credit_account_id, old.credit_account_id))
    if not two_phase or req.amount is not None:
        checks.append(("amount", req.amount, old.amount))
    elif req.flags & POST and hold_amount is not None:
        checks.append(("amount", hold_amount, old.amount))
    if not two_phase or req.ledger is not None:
        checks.append(("ledger", req.ledger, old.ledger))
    if not two_phase:
        checks.append(("timeout", req.timeout, old.timeout))
    for name, new, stored in checks:
        if new != stored:
            return name
    return None


def _validate_shape(req: TransferRequest) -> None:
    if not isinstance(req.id, str) or not req.id or len(req.id) > MAX_ID_LEN or "\x00" in req.id:
        raise e.TransferIdInvalidError(
            f"a transfer id is 1 to {MAX_ID_LEN} characters, without NUL bytes")
    if (req.ref is not None and "\x00" in req.ref) or (req.pending_id and "\x00" in req.pending_id):
        raise e.TransferIdInvalidError("ref and pending_id cannot contain NUL bytes")
    flags = int(req.flags)
    phase = flags & (PENDING | TWO_PHASE)
    if phase not in _ONE_PHASE:
        raise e.FlagsInvalidError("pending, post_pending and void_pending exclude each other")
    if flags & ~0xF:
        raise e.FlagsInvalidError(f"unknown transfer flags {flags:#x}")
    if not isinstance(req.timeout, int) or req.timeout < 0:
        raise e.TimeoutInvalidError("timeout is a whole number of seconds, 0 or more")
    if req.timeout and not flags & PENDING:
        raise e.TimeoutInvalidError("only a pending transfer (a hold) can have a timeout")
    if flags & TWO_PHASE:
        if not req.pending_id:
            raise e.PendingTransferNotFoundError("post or void needs the pending_id of a hold")
        if req.amount is not None and (not _is_int(req.amount) or req.amount <= 0):
            raise e.AmountNotPositiveError("a post amount must be a positive integer of fen")
        return
    if req.pending_id:
        raise e.FlagsInvalidError("pending_id is only for post_pending or void_pending")
    if req.amount is None or not _is_int(req.amount) or req.amount <= 0:
        raise e.AmountNotPositiveError("amount must be a positive integer number of fen")
    if req.debit_account_id == req.credit_account_id:
        raise e.SameAccountError("debit and credit accounts must be different")
    if not req.ledger:
        raise e.LedgerMismatchError("a transfer names its ledger (currency)")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class _Undo:
    """Remembers states touched in a linked chain so that a failure can roll them back."""

    def __init__(self) -> None:
        self.accounts: dict[int, tuple[int, int, int, int]] = {}
        self.holds: dict[str, tuple[str, str | None] | None] = {}
        self.created_ids: list[str] = []

    def account(self, a: AccountState) -> None:
        self.accounts.setdefault(a.id, a.counters())

    def hold(self, transfer_id: str, h: HoldState | None) -> None:
        if transfer_id not in self.holds:
            self.holds[transfer_id] = None if h is None else (h.status, h.resolved_by)


def decide(
    requests: Sequence[TransferRequest],
    accounts: dict[int, AccountState],
    holds: dict[str, HoldState],
    existing: dict[str, Transfer],
    now_us: int,
    *,
    expiring: bool = False,
) -> Decision:
    """Apply ``requests`` in order to the given states (mutated in place).

    ``existing`` maps already-stored transfer ids (of this batch) to their transfers. A
    request whose id exists with the same body gets ``exists`` and the stored transfer; with
    another body, :class:`TransferIdConflictError` naming the field. A failed request changes
    no state. ``expiring`` is the expiry job's mode: its voids release holds past their
    timeout and mark them ``expired``. A chain of ``LINKED`` requests is all-or-nothing: on
    failure every member fails, the culprit with its own error and the others with
    ``linked_event_failed``.
    """
    for r in requests:
        # IntFlag arithmetic costs a microsecond per '&', several per request below; the
        # same value as a plain int does not.
        if type(r.flags) is not int and isinstance(r.flags, int):
            r.flags = int(r.flags)
    results: list[TransferResult | None] = [None] * len(requests)
    created: dict[str, Transfer] = {}
    new_holds: dict[str, HoldState] = {}
    changed_holds: dict[str, HoldState] = {}
    i = 0
    n = len(requests)
    while i < n:
        # The chain is requests[i..j]: every member but the last carries LINKED.
        j = i
        while j < n - 1 and requests[j].flags & LINKED:
            j += 1
        chain = range(i, j + 1)
        if requests[j].flags & LINKED:
            for k in chain:
                results[k] = _failed(requests[k], e.LinkedChainOpenError(
                    "the last transfer of a batch must not be flagged linked"))
            i = j + 1
            continue
        undo = _Undo() if j > i else None
        failure: tuple[int, e.LedgerError] | None = None
        for k in chain:
            req = requests[k]
            try:
                results[k] = _apply_one(
                    req, accounts, holds, existing, created, new_holds, changed_holds,
                    now_us, undo, expiring,
                )
            except e.LedgerError as err:
                failure = (k, err)
                break
        if failure is not None:
            if undo is not None:
                _rollback(undo, accounts, holds, created, new_holds, changed_holds)
            bad, cause = failure
            for k in chain:
                results[k] = _failed(requests[k], cause if k == bad else e.LinkedEventFailedError(
                    f"transfer {requests[k].id!r} was not applied: transfer "
                    f"{requests[bad].id!r} in its linked chain failed ({cause.code})"))
        i = j + 1
    done = [r for r in results if r is not None]
    assert len(done) == n
    return Decision(
        results=done,
        created=list(created.values()),
        holds_new=list(new_holds.values()),
        holds_changed=[h for tid, h in changed_holds.items() if tid not in new_holds],
    )


def _failed(req: TransferRequest, err: e.LedgerError) -> TransferResult:
    return TransferResult(id=req.id if isinstance(req.id, str) else "", status="failed",
                          error=err)


def _apply_one(
    req: TransferRequest,
    accounts: dict[int, AccountState],
    holds: dict[str, HoldState],
    existing: dict[str, Transfer],
    created: dict[str, Transfer],
    new_holds: dict[str, HoldState],
    changed_holds: dict[str, HoldState],
    now_us: int,
    undo: _Undo | None,
    expiring: bool,
) -> TransferResult:
    _validate_shape(req)
    old = existing.get(req.id) or created.get(req.id)
    if old is not None:
        h = holds.get(req.pending_id) if req.pending_id else None
        name = differing_field(req, old, h.amount if h is not None else None)
        if name is not None:
            raise e.TransferIdConflictError(req.id, name)
        return TransferResult(id=req.id, status="exists", transfer=old)
    if req.flags & TWO_PHASE:
        t = _settle_hold(req, accounts, holds, changed_holds, now_us, undo, expiring)
    else:
        t = _move(req, accounts, holds, new_holds, now_us, undo)
    created[t.id] = t
    if undo is not None:
        undo.created_ids.append(t.id)
    return TransferResult(id=req.id, status="created", transfer=t)


def _account(accounts: dict[int, AccountState], account_id: int, side: str) -> AccountState:
    a = accounts.get(account_id)
    if a is None:
        raise e.AccountNotFoundError(f"{side} account {account_id} does not exist",
                                     account_id=account_id)
    return a


def _move(
    req: TransferRequest,
    accounts: dict[int, AccountState],
    holds: dict[str, HoldState],
    new_holds: dict[str, HoldState],
    now_us: int,
    undo: _Undo | None,
) -> Transfer:
    dr = _account(accounts, req.debit_account_id, "debit")
    cr = _account(accounts, req.credit_account_id, "credit")
    for a in (dr, cr):
        if a.ledger != req.ledger:
            raise e.LedgerMismatchError(
                f"account {a.id} keeps {a.ledger}, the transfer is in {req.ledger}")
        if a.flags & CLOSED:
            raise e.AccountClosedError(f"account {a.id} is closed", account_id=a.id)
    amount = req.amount
    assert amount is not None
    if dr.flags & DR_LIMIT:
        available = dr.credits_posted - dr.debits_posted - dr.debits_pending
        if amount > available:
            raise e.AccountOverdraftError(
                f"account {dr.id} has {available} fen available; {amount} asked",
                account_id=dr.id, available_fen=available)
    if cr.flags & CR_LIMIT:
        room = cr.debits_posted - cr.credits_posted - cr.credits_pending
        if amount > room:
            raise e.AccountCreditLimitError(
                f"account {cr.id} can take {room} fen; {amount} asked",
                account_id=cr.id, available_fen=room)
    if undo is not None:
        undo.account(dr)
        undo.account(cr)
    pending = bool(req.flags & PENDING)
    if pending:
        dr.debits_pending += amount
        cr.credits_pending += amount
        if undo is not None:
            undo.hold(req.id, holds.get(req.id))
        hold = HoldState(req.id, dr.id, cr.id, amount, dr.ledger, "pending",
                         expires_at(now_us, req.timeout))
        holds[req.id] = hold
        new_holds[req.id] = hold
    else:
        dr.debits_posted += amount
        cr.credits_posted += amount
    return Transfer(req.id, dr.id, cr.id, amount, dr.ledger, int(req.code), int(req.flags), None,
                    req.timeout, req.ref, now_us)


_DONE_ERRORS: dict[str, type[e.LedgerError]] = {
    "posted": e.PendingAlreadyPostedError,
    "voided": e.PendingAlreadyVoidedError,
    "expired": e.PendingExpiredError,
}


def _settle_hold(
    req: TransferRequest,
    accounts: dict[int, AccountState],
    holds: dict[str, HoldState],
    changed_holds: dict[str, HoldState],
    now_us: int,
    undo: _Undo | None,
    expiring: bool,
) -> Transfer:
    assert req.pending_id is not None
    h = holds.get(req.pending_id)
    if h is None:
        raise e.PendingTransferNotFoundError(f"no hold {req.pending_id!r}")
    if h.status != "pending":
        raise _DONE_ERRORS[h.status](f"hold {h.transfer_id!r} is already {h.status}")
    due = h.expires_at is not None and now_us >= h.expires_at
    if expiring and not (due and req.flags & VOID):
        raise e.PendingTransferMismatchError(f"hold {h.transfer_id!r} is not due to expire")
    if due and not expiring:
        raise e.PendingExpiredError(f"hold {h.transfer_id!r} expired; it will be released")
    for name, given, held in (("debit_account_id", req.debit_account_id, h.debit_account_id),
                              ("credit_account_id", req.credit_account_id, h.credit_account_id),
                              ("ledger", req.ledger, h.ledger)):
        if given and given != held:
            raise e.PendingTransferMismatchError(f"{name} differs from the hold's", field=name)
    post = bool(req.flags & POST)
    amount = h.amount if req.amount is None else req.amount
    if post and amount > h.amount:
        raise e.PostExceedsPendingError(f"the hold is {h.amount} fen; cannot post {amount}")
    if not post and amount != h.amount:
        raise e.PendingTransferMismatchError("a void releases the whole hold", field="amount")
    dr = accounts[h.debit_account_id]
    cr = accounts[h.credit_account_id]
    if undo is not None:
        undo.account(dr)
        undo.account(cr)
        undo.hold(h.transfer_id, h)
    dr.debits_pending -= h.amount
    cr.credits_pending -= h.amount
    if post:
        dr.debits_posted += amount
        cr.credits_posted += amount
    h.status = "posted" if post else ("expired" if expiring else "voided")
    h.resolved_by = req.id
    changed_holds[h.transfer_id] = h
    return Transfer(req.id, dr.id, cr.id, amount, h.ledger, int(req.code), int(req.flags),
                    h.transfer_id, 0, req.ref, now_us)


def _rollback(
    undo: _Undo,
    accounts: dict[int, AccountState],
    holds: dict[str, HoldState],
    created: dict[str, Transfer],
    new_holds: dict[str, HoldState],
    changed_holds: dict[str, HoldState],
) -> None:
    for aid, (dp, dpo, cp, cpo) in undo.accounts.items():
        a = accounts[aid]
        a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted = dp, dpo, cp, cpo
    for tid, saved in undo.holds.items():
        if saved is None:
            holds.pop(tid, None)
            new_holds.pop(tid, None)
        else:
            h = holds[tid]
            h.status, h.resolved_by = saved
            if h.status == "pending":
                changed_holds.pop(tid, None)
    for tid in undo.created_ids:
        created.pop(tid, None)
