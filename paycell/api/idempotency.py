"""``Idempotency-Key`` for every state-changing POST (Stripe's semantics).

The first request with a key claims it (a row with a unique (caller, key) index), runs, and
stores its response; a retry with the same key and the same request gets the stored
response again (header ``Idempotent-Replayed: true``) and changes nothing. The same key with
a different request is refused (422 ``idempotency_key_reused``); a retry while the first is
still running gets 409 ``idempotency_key_in_progress``. Business refusals (4xx) are stored
like successes: retrying them gives the same answer. A claim left ``started`` by a crash is
taken over after ``STALE_AFTER_S``; that is safe because every use case below is itself
idempotent on ids derived from the key (see each service's docstring).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    select,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from paycell.api.errors import problem, problem_of, status_for
from paycell.bulk import update_many
from paycell.clock import Clock
from paycell.errors import ConflictError, InvalidRequestError, PaycellError
from paycell.ledger.pgbulk import driver_rows, ints, texts

STALE_AFTER_S = 30  # longer than any request runs (the bank and carrier time out at 10 s)
MAX_KEY_LEN = 255

metadata = MetaData()
idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("caller", String(100), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("state", String(12), nullable=False),
    Column("status_code", Integer),
    Column("response", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)


# Every POST runs these two: built once, so SQLAlchemy neither rebuilds them nor
# recomputes their cache keys per request.
_CLAIM = idempotency_keys.insert()
_FINISH = (update(idempotency_keys)
           .where(idempotency_keys.c.caller == bindparam("w_caller"),
                  idempotency_keys.c.key == bindparam("w_key"))
           .values(state="done", status_code=bindparam("v_status"),
                   response=bindparam("v_response"), updated_at=bindparam("v_at")))

# A batch's claims on PostgreSQL: arrays, so that the text (parsed and planned once per
# connection) is the same for a batch of 1 or 200; a multi-row VALUES list is new text
# per size, which the driver re-parses in Python every time.
_CLAIM_PG = (
    "INSERT INTO idempotency_keys (caller, key, request_hash, state, created_at, updated_at)"
    " SELECT c, k, h, 'started', %s, %s FROM unnest(%s::text[], %s::text[], %s::text[])"
    " WITH ORDINALITY AS u(c, k, h, n) ORDER BY n"
    " ON CONFLICT DO NOTHING RETURNING caller, key")

# A batch's answers on PostgreSQL, written onto the rows its claims made. An UPDATE joined to
# the arrays left the join to the planner, which on a table it believed small (statistics
# from before the table grew, kept in the connection's prepared plan) scanned it all: 5,834
# rows read for 8 answers under load. ON CONFLICT finds each row through the key's own
# index, whatever the statistics say; the INSERT itself never happens (the claims are there).
_STORE_PG = (
    "INSERT INTO idempotency_keys AS t (caller, key, request_hash, state, status_code,"
    " response, created_at, updated_at) SELECT c, k, h, 'done', s, r, %s, %s FROM"
    " unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[]) AS u(c, k, h, s, r)"
    " ON CONFLICT (caller, key) DO UPDATE SET state = excluded.state,"
    " status_code = excluded.status_code, response = excluded.response,"
    " updated_at = excluded.updated_at")


class IdempotencyKeyMissingError(InvalidRequestError):
    code = "idempotency_key_required"


class IdempotencyKeyReusedError(InvalidRequestError):
    code = "idempotency_key_reused"


class IdempotencyKeyInProgressError(ConflictError):
    code = "idempotency_key_in_progress"


def request_hash(method: str, path: str, body: Any) -> str:
    """The fingerprint a key's retries must match: the method, the path and the body as
    canonical JSON. A body of plain JSON values (what the payment routes hash) is dumped as
    it is; anything else (models, dates, decimals) first as FastAPI encodes it, which gives
    the same text for plain values, only slower (11 us against 4 for a transfer's body)."""
    try:
        canonical = _canonical(body, allow_nan=False)
    except (TypeError, ValueError):
        canonical = _canonical(jsonable_encoder(body))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def _canonical(value: Any, *, allow_nan: bool = True) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=allow_nan)


def check_key(key: str | None) -> str:
    if not key:
        raise IdempotencyKeyMissingError(
            "send an Idempotency-Key header (e.g. a UUID) so that a retry cannot act twice")
    if len(key) > MAX_KEY_LEN or not key.isprintable():
        raise InvalidRequestError(f"an Idempotency-Key is 1 to {MAX_KEY_LEN} printable "
                                  "characters")
    return key


async def idempotent(
    request: Request, engine: Engine, clock: Clock, caller: str, key: str | None,
    body: Any, run: Callable[[], Any], *, status_code: int = 200,
    redact: Callable[[Any], Any] | None = None,
) -> Response:
    """Run ``run`` (a blocking use case) at most once per (caller, key); replay its answer.

    For answers that carry secrets shown once (voucher secrets, an agent's key), ``redact``
    gives what is stored for replays instead, so no secret is ever written in clear.
    """
    key = check_key(key)
    digest = request_hash(request.method, request.url.path, body)

    def whole() -> Response:
        # Claim, use case and stored answer in one trip to a worker thread: each hop costs
        # a thread switch and a turn at the GIL, and under load those add up.
        replay = _claim(engine, clock, caller, key, digest)
        if replay is not None:
            status, payload = replay
            media = "application/problem+json" if status >= 400 else "application/json"
            return Response(payload, status_code=status, media_type=media,
                            headers={"Idempotent-Replayed": "true"})
        try:
            result = run()
        except PaycellError as exc:
            resp = problem(request, status_for(exc), exc.code, exc.message, extra=exc.detail)
            _finish(engine, clock, caller, key, resp.status_code, bytes(resp.body).decode())
            return resp
        except BaseException:
            _release(engine, caller, key)
            raise
        payload = json.dumps(jsonable_encoder(result))
        stored = payload if redact is None else json.dumps(jsonable_encoder(redact(result)))
        _finish(engine, clock, caller, key, status_code, stored)
        return Response(payload, status_code=status_code, media_type="application/json")

    response: Response = await run_in_threadpool(whole)
    return response


def _claim(engine: Engine, clock: Clock, caller: str, key: str,
           digest: str) -> tuple[int, str] | None:
    now = clock.now_us()
    try:
        with engine.begin() as conn:
            conn.execute(_CLAIM, {"caller": caller, "key": key, "request_hash": digest,
                                  "state": "started", "created_at": now, "updated_at": now})
        return None
    except IntegrityError:
        pass
    with engine.begin() as conn:
        replay = _existing(conn, now, caller, key, digest)
    return None if replay is None else (replay.status, replay.body)


def _finish(engine: Engine, clock: Clock, caller: str, key: str, status: int,
            payload: str) -> None:
    with engine.begin() as conn:
        conn.execute(_FINISH, {"w_caller": caller, "w_key": key, "v_status": status,
                               "v_response": payload, "v_at": clock.now_us()})


def _release(engine: Engine, caller: str, key: str) -> None:
    """An unexpected failure: forget the claim so that a retry runs again."""
    t = idempotency_keys
    with engine.begin() as conn:
        conn.execute(t.delete().where(t.c.caller == caller, t.c.key == key,
                                      t.c.state == "started"))


# -- batched use cases ----------------------------------------------------------------------
# A use case that runs many requests in one transaction (``api/desk.py``) claims their keys
# in that transaction and stores their answers in it: a crash leaves neither the claim nor
# the answer, a retry runs afresh, and a retry racing the first waits for its commit (the
# unique index) and then replays it instead of hearing 409.


@dataclass(frozen=True, slots=True)
class Claim:
    """One request's Idempotency-Key, as a batch claims it."""

    caller: str
    key: str
    digest: str  # request_hash() of the request
    path: str  # for the problem+json ``instance`` of a stored refusal
    status_code: int = 200  # of a success

    @property
    def id(self) -> tuple[str, str]:
        return self.caller, self.key


@dataclass(frozen=True, slots=True)
class Reply:
    """What a batched request answers: stored now, replayed, or refused before running."""

    status: int
    body: str
    replayed: bool = False

    def response(self) -> Response:
        media = "application/problem+json" if self.status >= 400 else "application/json"
        headers = {"Idempotent-Replayed": "true"} if self.replayed else None
        return Response(self.body, status_code=self.status, media_type=media,
                        headers=headers)


class Keyed:
    """A batch's keys: :meth:`ahead` claims them, :meth:`after` stores the answers, both in
    the batch's transaction; then ``replies`` holds an answer per request."""

    def __init__(self, clock: Clock, claims: Sequence[Claim]) -> None:
        self.clock, self.claims = clock, list(claims)
        self.replies: list[Reply | None] = [None] * len(self.claims)

    def ahead(self, conn: Connection) -> list[Reply | None]:
        """Claim every key; a request already answered (or refused) gets its reply now, the
        others None: run them."""
        now = self.clock.now_us()
        claims = sorted(self.claims, key=lambda c: c.id)  # one order: no deadlock
        if conn.dialect.name == "postgresql":  # one text whatever the batch's size
            rows: Any = driver_rows(conn, _CLAIM_PG, (
                now, now, texts([c.caller for c in claims]), texts([c.key for c in claims]),
                texts([c.digest for c in claims])))
        else:
            t = idempotency_keys
            rows = conn.execute(
                sqlite.insert(t).on_conflict_do_nothing().returning(t.c.caller, t.c.key),
                [{"caller": c.caller, "key": c.key, "request_hash": c.digest,
                  "state": "started", "created_at": now, "updated_at": now}
                 for c in claims])
        claimed = {(r[0], r[1]) for r in rows}
        out: list[Reply | None] = [None] * len(self.claims)
        for i, c in enumerate(self.claims):
            if c.id not in claimed:
                try:
                    out[i] = _existing(conn, now, c.caller, c.key, c.digest)
                except PaycellError as exc:
                    out[i] = Reply(*problem_of(c.path, exc))
        self.replies = list(out)
        return out

    def store(self, conn: Connection, answers: Sequence[tuple[int, Reply]]) -> None:
        """Store the answers ``(index, reply)`` of the requests that ran."""
        if not answers:
            return
        now = self.clock.now_us()
        if conn.dialect.name == "postgresql":
            claims = [self.claims[i] for i, _ in answers]
            driver_rows(conn, _STORE_PG, (
                now, now, texts([c.caller for c in claims]), texts([c.key for c in claims]),
                texts([c.digest for c in claims]), ints([r.status for _, r in answers]),
                texts([r.body for _, r in answers])))
        else:
            update_many(conn, idempotency_keys, ("caller", "key"),
                        ("state", "status_code", "response", "updated_at"),
                        [(self.claims[i].caller, self.claims[i].key, "done", r.status, r.body,
                          now) for i, r in answers])
        for i, r in answers:
            self.replies[i] = r


def answer(claim: Claim, result: Any) -> Reply:
    """The reply to a request that ran: its result as JSON, or its refusal."""
    if isinstance(result, PaycellError):
        return Reply(*problem_of(claim.path, result))
    if isinstance(result, BaseModel):  # what jsonable_encoder makes of it, in pydantic's core
        return Reply(claim.status_code, result.model_dump_json(by_alias=True))
    return Reply(claim.status_code, json.dumps(jsonable_encoder(result)))


def _existing(conn: Connection, now: int, caller: str, key: str, digest: str
              ) -> Reply | None:
    """A key already claimed: its stored reply, None to take it over (abandoned by a crash:
    the use case itself is idempotent), or an error (reused for another request, still
    running)."""
    t = idempotency_keys
    row = conn.execute(select(t).where(t.c.caller == caller, t.c.key == key)).one()
    if row.request_hash != digest:
        raise IdempotencyKeyReusedError(
            "this Idempotency-Key was used for a different request; use a new key")
    if row.state == "done":
        return Reply(int(row.status_code), str(row.response), replayed=True)
    if now - row.updated_at < STALE_AFTER_S * 1_000_000:
        raise IdempotencyKeyInProgressError(
            "a request with this Idempotency-Key is still running; retry in a moment")
    taken = conn.execute(update(t).where(t.c.caller == caller, t.c.key == key,
                                         t.c.updated_at == row.updated_at)
                         .values(updated_at=now)).rowcount
    if taken != 1:
        raise IdempotencyKeyInProgressError("another retry took this key over just now")
    return None


def run_keyed(clock: Clock, items: Sequence[tuple[Claim, Any]],
              run: Callable[[list[Any], Callable[..., Any], Callable[..., Any]], Any],
              render: Callable[[Any, Any], Any]) -> list[Reply]:
    """A desk's batch with Idempotency-Keys: ``run(commands, ahead, after)`` runs the
    batched use case, which calls ``ahead(conn)`` first and ``after(conn, outcomes)`` last
    in its transaction; an outcome has ``answered`` (set for a request ``ahead`` answered)
    and ``error``, and ``render(command, outcome)`` makes a success's JSON model."""
    keyed = Keyed(clock, [claim for claim, _ in items])

    def after(conn: Connection, outcomes: Sequence[Any]) -> None:
        keyed.store(conn, [
            (i, answer(claim, o.error or render(cmd, o)))
            for i, ((claim, cmd), o) in enumerate(zip(items, outcomes, strict=True))
            if o.answered is None])

    run([cmd for _, cmd in items], keyed.ahead, after)
    replies = [r for r in keyed.replies if r is not None]
    assert len(replies) == len(items), "every request is answered"
    return replies
