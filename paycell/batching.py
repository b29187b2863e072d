"""What a batched use case offers its caller: its own rows in the batch's transaction.

A batched use case (``funding/p2p_send.py``, ``onsite/authorise_batch.py``,
``payments/paying_batch.py``, ``payments/orders_batch.py``) takes ``ahead(conn)``, which may
answer some commands before they run (the API's Idempotency-Key replays), and
``after(conn, outcomes)``, which sees every outcome before the commit (the API stores its
answers). :func:`around` runs the three in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection

Ahead = Callable[[Connection], Sequence[Any]]
After = Callable[[Connection, list[Any]], None]


class Outcome(Protocol):
    answered: Any


OutcomeT = TypeVar("OutcomeT", bound=Outcome)


def around(conn: Connection, outcomes: list[OutcomeT], run: Callable[[list[int]], None],
           ahead: Ahead | None, after: After | None) -> list[OutcomeT]:
    """``ahead``, then ``run`` the commands it left unanswered (by index), then ``after``."""
    pre = ahead(conn) if ahead is not None else [None] * len(outcomes)
    todo = []
    for i, answered in enumerate(pre):
        if answered is not None:
            outcomes[i].answered = answered
        else:
            todo.append(i)
    if todo:
        run(todo)
    if after is not None:
        after(conn, outcomes)
    return outcomes
