"""Demo merchants, onboarded through the real steps: a coffee shop, an online book store
and a ticket seller, each with stores, an HMAC key and a webhook secret.

``seed_demo`` may run again on the same database: it finds what it made before (the
applications carry request keys) and returns the same merchants and keys.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from paycell.context import Context
from paycell.merchants import onboarding as ob
from paycell.merchants.credentials import issue_credential, list_credentials, lookup_key
from paycell.merchants.errors import StoreCodeTakenError
from paycell.merchants.model import Merchant, OnboardedMerchant
from paycell.merchants.service import add_store, get_merchant, webhook_secrets
from paycell.operators import approvals
from paycell.operators.service import ensure_operator


@dataclass(frozen=True)
class DemoMerchant:
    slug: str
    name: str
    company: str
    category: str
    notify_url: str
    stores: tuple[tuple[str, str, str], ...]  # (code, name, address)


DEMO_MERCHANTS = (
    DemoMerchant("coffee", "Harbour Coffee", "Harbour Coffee (Shenzhen) Co., Ltd.",
                 "food_beverage", "http://127.0.0.1:9001/notify/coffee",
                 (("SZ-NS-01", "Harbour Coffee Nanshan", "1 Keyuan Rd, Nanshan, Shenzhen"),
                  ("SZ-FT-02", "Harbour Coffee Futian", "88 Shennan Blvd, Futian, Shenzhen"))),
    DemoMerchant("books", "Inkwell Books Online", "Inkwell Digital Publishing Co., Ltd.",
                 "books_media", "http://127.0.0.1:9001/notify/books",
                 (("WEB", "inkwell.example", "online"),)),
    DemoMerchant("tickets", "Pearl River Tickets", "Pearl River Ticketing Co., Ltd.",
                 "tickets_travel", "http://127.0.0.1:9001/notify/tickets",
                 (("WEB", "tickets.example", "online"),
                  ("GZ-BOX", "Box office Tianhe", "2 Tianhe Rd, Guangzhou"))),
)


def seed_demo(ctx: Context) -> list[OnboardedMerchant]:
    """The demo merchants, active, with their stores and first keys (created once)."""
    maker = ensure_operator(ctx.engine, ctx.clock, "demo-maker", "operator")
    checker = ensure_operator(ctx.engine, ctx.clock, "demo-checker", "operator")
    out = []
    for i, d in enumerate(DEMO_MERCHANTS):
        app = ob.default_application(d.name, d.category, company=d.company,
                                     bank_account_holder=d.company, notify_url=d.notify_url,
                                     contact_email=f"ops@{d.slug}.example",
                                     bank_account_number=f"62220200{i + 1:08d}")
        m = ob.apply(ctx, app, actor=maker.name, request_key=f"demo:{d.slug}")
        if m.state == "applied":
            m = ob.start_review(ctx, maker, m.id, "demo: documents checked")
        if m.state == "in_review":
            open_ = approvals.list_pending(ctx, action=ob.ACTIVATE, subject=f"merchant:{m.id}")
            approval = open_[0] if open_ else ob.propose_activation(ctx, maker, m.id, "demo")
            approvals.approve(ctx, checker, approval.id)
        for code, name, address in d.stores:
            with contextlib.suppress(StoreCodeTakenError):
                add_store(ctx, m.id, code, name, address, maker.name)
        out.append(_with_key(ctx, m.id, maker.name))
    return out


CLOSED = DemoMerchant("noodles", "Old Town Noodles", "Old Town Noodles (Shenzhen) Co., Ltd.",
                      "food_beverage", "http://127.0.0.1:9001/notify/noodles", ())


def seed_closed(ctx: Context) -> Merchant:
    """A merchant that traded and then closed down: onboarded like the others, then
    terminated through maker-checker (demo-maker proposes, demo-checker approves), so the
    demo world has a terminated merchant whose keys are revoked. Idempotent."""
    maker = ensure_operator(ctx.engine, ctx.clock, "demo-maker", "operator")
    checker = ensure_operator(ctx.engine, ctx.clock, "demo-checker", "operator")
    d = CLOSED
    app = ob.default_application(d.name, d.category, company=d.company,
                                 bank_account_holder=d.company, notify_url=d.notify_url,
                                 contact_email=f"ops@{d.slug}.example",
                                 bank_account_number="6222020000009999")
    m = ob.apply(ctx, app, actor=maker.name, request_key=f"demo:{d.slug}")
    if m.state == "applied":
        m = ob.start_review(ctx, maker, m.id, "demo: documents checked")
    for action, state, propose in (
            (ob.ACTIVATE, "in_review",
             lambda: ob.propose_activation(ctx, maker, m.id, "demo")),
            (ob.TERMINATE, "active",
             lambda: ob.propose_termination(ctx, maker, m.id, "demo: closed down"))):
        if get_merchant(ctx, m.id).state == state:
            open_ = approvals.list_pending(ctx, action=action, subject=f"merchant:{m.id}")
            approvals.approve(ctx, checker, (open_[0] if open_ else propose()).id)
    return get_merchant(ctx, m.id)


def _with_key(ctx: Context, merchant_id: int, actor: str) -> OnboardedMerchant:
    now = ctx.clock.now_us()
    existing = [c for c in list_credentials(ctx, merchant_id)
                if c.kind == "hmac" and c.active_at(now)]
    if existing:
        found = lookup_key(ctx, existing[0].key_id)
        assert found is not None and found[1] is not None
        key_id, secret = existing[0].key_id, found[1]
    else:
        cred, new = issue_credential(ctx, merchant_id, actor=actor, label="demo")
        assert new is not None
        key_id, secret = cred.key_id, new
    return OnboardedMerchant(get_merchant(ctx, merchant_id), key_id, secret,
                             webhook_secrets(ctx, merchant_id)[0])
