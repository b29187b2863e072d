"""Points where other domains join the subscriber lifecycle without subscribers importing
them (funding imports subscribers, not the other way round).

A domain registers at import: ``hooks.after_open.append(fn)``. ``fn(ctx, subscriber)``
runs after the wallet is committed; a failure is logged and does not undo the opening,
so a hook must be something that can also happen later (the P2P claim job retries).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paycell.context import Context
    from paycell.subscribers.service import Subscriber

log = logging.getLogger(__name__)

AfterOpen = Callable[["Context", "Subscriber"], object]
after_open: list[AfterOpen] = []


def run_after_open(ctx: Context, subscriber: Subscriber) -> None:
    for fn in list(after_open):
        try:
            fn(ctx, subscriber)
        except Exception:
            log.exception("after-open hook %s failed for subscriber %s; it will be retried "
                          "by its own job", getattr(fn, "__name__", fn), subscriber.id)
