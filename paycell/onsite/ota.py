"""OTA (空中下载): managing the payment applet on subscribers' SIMs by secured SMS.

A job (install, personalise, lock, unlock, delete) targets one SIM by ICCID. States:
``queued`` -> ``sent`` -> ``confirmed`` (a proof-of-receipt with status ok) or ``failed``
(no PoR after ``settings.ota_max_attempts`` sends, ``settings.ota_retry_after_s`` apart).

Sending follows "persist, then call the outside": the worker claims a due job in a short
transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite), takes the
SIM's next counter, records the attempt and commits; only then is the packet handed to
``ctx.sms``. Every attempt gets a fresh counter (the SIM refuses a counter it has seen), and
the commands are idempotent on the SIM, so a retry after a lost PoR is harmless.

Keys: the per-SIM keys are derived when needed (``sim_applet.derive_sim_keys``, HKDF) from
the OTA master key, itself derived one way from the issuer master key; none is stored. The
card key a personalise job carries is asked of the ``KeyStore`` at send time and travels
encrypted under the SIM's KIc. docs/onsite.md, "OTA".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from paycell.config import Settings
from paycell.context import Context
from paycell.errors import ConflictError, InvalidRequestError, NotFoundError
from paycell.onsite import sim_applet as sa

log = logging.getLogger(__name__)

metadata = MetaData()
BIGID = BigInteger().with_variant(Integer, "sqlite")
STATES = ("queued", "sent", "confirmed", "failed")
ICCID = re.compile(r"^\d{18,22}$")

# One row per SIM the platform has talked to: the last counter it used (never reused).
ota_sims = Table(
    "ota_sims", metadata,
    Column("iccid", String(22), primary_key=True),
    Column("msisdn", String(20), nullable=False),
    Column("counter", BigInteger, nullable=False),
    Column("applet_state", String(12)),  # as last confirmed by a PoR; None: never heard
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
ota_jobs = Table(
    "ota_jobs", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("iccid", String(22), nullable=False),
    Column("msisdn", String(20), nullable=False),
    Column("command", String(12), nullable=False),
    Column("card_id", BIGID),  # personalise: the card whose key goes into the applet
    Column("state", String(10), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("counter", BigInteger),  # of the latest attempt
    Column("next_attempt_at", BigInteger),
    Column("last_error", String(40)),
    Column("request_key", String(400), unique=True),
    Column("created_by", String(100), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("sent_at", BigInteger),
    Column("confirmed_at", BigInteger),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_ota_jobs_due", "state", "next_attempt_at"),
    Index("ix_ota_jobs_iccid", "iccid"),
)
j = ota_jobs


class OtaJobNotFoundError(NotFoundError):
    code = "ota_job_not_found"


class OtaCommandInvalidError(InvalidRequestError):
    code = "ota_command_invalid"


class IccidInvalidError(InvalidRequestError):
    code = "iccid_invalid"


class OtaSimUnknownError(InvalidRequestError):
    """No MSISDN is known for the SIM: give one, or issue a card on it first."""

    code = "ota_sim_unknown"


class OtaPorInvalidError(InvalidRequestError):
    """Not a proof-of-receipt of this SIM for this job (format, job, or MAC)."""

    code = "ota_por_invalid"


class OtaJobStateError(ConflictError):
    code = "ota_job_state"


@dataclass(frozen=True)
class OtaJob:
    id: int
    iccid: str
    msisdn: str
    command: str
    card_id: int | None
    state: str
    attempts: int
    counter: int | None
    next_attempt_at: int | None
    last_error: str | None
    created_by: str
    created_at: int
    sent_at: int | None
    confirmed_at: int | None
    updated_at: int


def _job(row: Any) -> OtaJob:
    return OtaJob(row.id, row.iccid, row.msisdn, row.command, row.card_id, row.state,
                  row.attempts, row.counter, row.next_attempt_at, row.last_error,
                  row.created_by, row.created_at, row.sent_at, row.confirmed_at,
                  row.updated_at)


def sim_keys(settings: Settings, iccid: str) -> sa.SimKeys:
    """The SIM's OTA keys, from the key store's OTA master key and the ICCID."""
    from paycell.onsite.keystore import KeyStore

    return sa.derive_sim_keys(KeyStore(settings).ota_master_key(), iccid)


# -- creating and reading jobs -------------------------------------------------------------


def _msisdn_for(ctx: Context, iccid: str) -> str | None:
    """The SIM's number: as last used for it, else its card's subscriber's."""
    from paycell.onsite import cards
    from paycell.subscribers.service import get_subscriber

    with ctx.engine.connect() as conn:
        known = conn.execute(select(ota_sims.c.msisdn).where(ota_sims.c.iccid == iccid)).first()
    if known is not None:
        return str(known.msisdn)
    card = cards.find_by_iccid(ctx, iccid)
    return None if card is None else get_subscriber(ctx, card.subscriber_id).msisdn


def create_job(ctx: Context, iccid: str, command: str, *, actor: str,
               msisdn: str | None = None, card_id: int | None = None,
               request_key: str | None = None) -> OtaJob:
    """Queue a job for the SIM ``iccid``; the worker sends it. Idempotent by
    ``request_key`` (the first job is returned). Raises :class:`IccidInvalidError`,
    :class:`OtaCommandInvalidError` (personalise needs ``card_id``),
    :class:`OtaSimUnknownError` (no MSISDN given or known for the SIM)."""
    from paycell.subscribers.service import normalise_msisdn

    if not ICCID.match(iccid or ""):
        raise IccidInvalidError("an ICCID is 18 to 22 digits")
    if command not in sa.COMMANDS:
        raise OtaCommandInvalidError(f"command is one of {', '.join(sa.COMMANDS)}")
    if command == "personalise" and card_id is None:
        raise OtaCommandInvalidError("a personalise job needs the card_id")
    if request_key is not None:
        found = _by_request_key(ctx, request_key)
        if found is not None:
            return found
    number = normalise_msisdn(msisdn) if msisdn else _msisdn_for(ctx, iccid)
    if number is None:
        raise OtaSimUnknownError(f"no mobile number is known for SIM {iccid}")
    now = ctx.clock.now_us()
    try:
        with ctx.engine.begin() as conn:
            sim = conn.execute(select(ota_sims).where(ota_sims.c.iccid == iccid)).first()
            if sim is None:
                conn.execute(ota_sims.insert().values(iccid=iccid, msisdn=number, counter=0,
                                                      created_at=now, updated_at=now))
            elif sim.msisdn != number:
                conn.execute(update(ota_sims).where(ota_sims.c.iccid == iccid)
                             .values(msisdn=number, updated_at=now))
            new_id = conn.execute(j.insert().values(
                iccid=iccid, msisdn=number, command=command, card_id=card_id,
                state="queued", attempts=0, next_attempt_at=now, request_key=request_key,
                created_by=actor, created_at=now, updated_at=now).returning(j.c.id)
            ).scalar_one()
    except IntegrityError:
        found = _by_request_key(ctx, request_key) if request_key else None
        if found is None:
            raise
        return found
    log.info("OTA job %s queued: %s on SIM %s by %s", new_id, command, iccid, actor)
    return get_job(ctx, int(new_id))


def _by_request_key(ctx: Context, key: str) -> OtaJob | None:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(j).where(j.c.request_key == key)).first()
    return _job(row) if row is not None else None


def get_job(ctx: Context, job_id: int) -> OtaJob:
    """The job; :class:`OtaJobNotFoundError` if there is none."""
    with ctx.engine.connect() as conn:
        row = conn.execute(select(j).where(j.c.id == job_id)).first()
    if row is None:
        raise OtaJobNotFoundError(f"OTA job {job_id} does not exist")
    return _job(row)


def list_jobs(ctx: Context, *, iccid: str | None = None, state: str | None = None,
              before_id: int | None = None, limit: int = 50) -> list[OtaJob]:
    """Newest first; ``before_id`` pages on."""
    stmt = select(j).order_by(j.c.id.desc()).limit(limit)
    if iccid:
        stmt = stmt.where(j.c.iccid == iccid)
    if state:
        stmt = stmt.where(j.c.state == state)
    if before_id is not None:
        stmt = stmt.where(j.c.id < before_id)
    with ctx.engine.connect() as conn:
        return [_job(r) for r in conn.execute(stmt)]


# -- sending -------------------------------------------------------------------------------


def _data_for(ctx: Context, conn: Connection, row: Any) -> bytes:
    if row.command != "personalise":
        return b""
    from paycell.onsite import cards
    from paycell.onsite.keystore import KeyStore

    card = cards.get_card(conn, row.card_id)  # in the claim's transaction (SQLite: one)
    key = KeyStore(ctx.settings).card_key_for_personalisation(card.pan, card.psn)
    return sa.personalisation_data(card.pan, card.psn, key)


def _claim_and_pack(ctx: Context, condition: Any) -> tuple[OtaJob, str | None] | None:
    """Take one job matching ``condition``: mark it failed if its sends are used up, or
    record the next attempt and return the packet to text. None if nothing is free."""
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        stmt = select(j).where(condition).order_by(j.c.next_attempt_at, j.c.id).limit(1)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        row = conn.execute(stmt).first()
        if row is None:
            return None
        mine = and_(j.c.id == row.id, j.c.state == row.state, j.c.attempts == row.attempts)
        if row.attempts >= ctx.settings.ota_max_attempts:
            conn.execute(update(j).where(mine).values(
                state="failed", next_attempt_at=None, updated_at=now,
                last_error=row.last_error or "no_proof_of_receipt"))
            return _job(conn.execute(select(j).where(j.c.id == row.id)).one()), None
        counter = conn.execute(
            update(ota_sims).where(ota_sims.c.iccid == row.iccid)
            .values(counter=ota_sims.c.counter + 1, updated_at=now)
            .returning(ota_sims.c.counter)).scalar_one()
        text = sa.encode_command(sim_keys(ctx.settings, row.iccid), sa.Command(
            int(counter), row.id, row.command, _data_for(ctx, conn, row)))
        if conn.execute(update(j).where(mine).values(
                state="sent", attempts=row.attempts + 1, counter=counter, sent_at=now,
                next_attempt_at=now + ctx.settings.ota_retry_after_s * 1_000_000,
                updated_at=now)).rowcount != 1:
            raise RuntimeError("lost the OTA job claim")  # rolls the counter back too
        job = _job(conn.execute(select(j).where(j.c.id == row.id)).one())
    return job, text


def _due(now: int) -> Any:
    return and_(j.c.state.in_(("queued", "sent")), j.c.next_attempt_at <= now)


def send_due(ctx: Context, limit: int = 100) -> int:
    """Worker job: send every due job (first sends and retries), fail those out of sends;
    how many changed. Several workers may run it at once: each job is claimed by one."""
    done = 0
    for _ in range(limit):
        got = _claim_and_pack(ctx, _due(ctx.clock.now_us()))
        if got is None:
            break
        job, text = got
        done += 1
        if text is None:
            log.warning("OTA job %s (%s on %s) failed: no proof-of-receipt after %s sends",
                        job.id, job.command, job.iccid, job.attempts)
            continue
        ctx.sms.send(job.msisdn, text)  # after commit: never inside a transaction
    return done


def send_job(ctx: Context, job_id: int) -> OtaJob:
    """Send (or re-send) one queued or sent job now, whatever its retry time; the same
    counting of attempts applies. :class:`OtaJobStateError` for a confirmed/failed job."""
    job = get_job(ctx, job_id)
    if job.state not in ("queued", "sent"):
        raise OtaJobStateError(f"OTA job {job_id} is {job.state}")
    got = _claim_and_pack(ctx, and_(j.c.id == job_id, j.c.state.in_(("queued", "sent"))))
    if got is None:
        return get_job(ctx, job_id)
    job, text = got
    if text is not None:
        ctx.sms.send(job.msisdn, text)
    return job


# -- proofs of receipt ---------------------------------------------------------------------


def receive_por(ctx: Context, iccid: str, por_text: str) -> OtaJob:
    """Apply a SIM's proof-of-receipt. Status ok confirms the job (also a late PoR for an
    earlier attempt, or one after the job was given up: the SIM proves it applied the
    command); another status is recorded as the job's ``last_error`` and retries go on.
    Idempotent. :class:`OtaPorInvalidError` for a PoR that is malformed, names a job of
    another SIM or a counter never sent, or whose MAC does not verify."""
    try:
        por, body, mac = sa.parse_por(por_text)
    except sa.PacketFormatError as exc:
        raise OtaPorInvalidError(f"not a proof-of-receipt: {exc}") from None
    if not sa.verify_por(sim_keys(ctx.settings, iccid), body, mac):
        raise OtaPorInvalidError("the proof-of-receipt's MAC does not verify")
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        stmt = select(j).where(j.c.id == por.job_id)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        if row is None or row.iccid != iccid or row.counter is None or por.counter > row.counter:
            raise OtaPorInvalidError("the proof-of-receipt is for no job sent to this SIM")
        if por.status == "ok":
            if row.state != "confirmed":
                conn.execute(update(j).where(j.c.id == row.id).values(
                    state="confirmed", confirmed_at=now, next_attempt_at=None,
                    last_error=None, updated_at=now))
            conn.execute(update(ota_sims).where(ota_sims.c.iccid == iccid)
                         .values(applet_state=por.applet_state, updated_at=now))
        elif row.state == "sent":
            conn.execute(update(j).where(j.c.id == row.id).values(
                last_error=f"sim:{por.status}", updated_at=now))
    log.info("OTA job %s: proof-of-receipt %s from SIM %s", por.job_id, por.status, iccid)
    return get_job(ctx, por.job_id)


def receive_por_sms(ctx: Context, msisdn: str, text: str) -> str:
    """The inbound-SMS hook: a text starting with ``OTAR1`` from a SIM. Never raises and
    sends no reply (a SIM does not read texts); returns what was done, for the CLI."""
    try:
        por, _, _ = sa.parse_por(text)
        with ctx.engine.connect() as conn:
            row = conn.execute(select(j.c.iccid, j.c.msisdn)
                               .where(j.c.id == por.job_id)).first()
        if row is None or row.msisdn != msisdn:
            log.warning("OTA proof-of-receipt from %s for no job of that number", msisdn)
            return ""
        job = receive_por(ctx, row.iccid, text)
    except (sa.PacketFormatError, OtaPorInvalidError) as exc:
        log.warning("OTA proof-of-receipt from %s refused: %s", msisdn, exc)
        return ""
    return f"OTA job {job.id}: {job.state}"


# -- reacting to cards ---------------------------------------------------------------------


def lock_lost_card(ctx: Context, card: Any, *_: Any) -> None:
    """``cards.on_lost`` handler: queue a lock job for the lost card's SIM (once per card
    and loss: idempotent by the card id and the time it was reported)."""
    create_job(ctx, card.iccid, "lock", actor="system:card-lost", card_id=card.id,
               request_key=f"card-lost:{card.id}:{card.blocked_at or card.updated_at}")


def register_hooks() -> None:
    """Hook OTA into the card life cycle (done on import; safe to call again)."""
    from paycell.onsite import cards

    if lock_lost_card not in cards.on_lost:
        cards.on_lost.append(lock_lost_card)


register_hooks()
