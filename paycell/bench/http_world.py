"""The HTTP benchmark's world: wallets with their tokens, cards and terminals, and merchants,
set up through the services before the load starts (untimed), and the environment the API
server is started with."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

PIN = "135790"
OPERATOR_KEY = "bench-operator-key"
WALLET_FUNDS = 100_000_000  # fen: far more than any run spends
MERCHANTS = 4
TIERS = [{"tier": 0, "name": "bench", "balance_cap_fen": 10**13, "per_transaction_fen": 10**12,
          "daily_fen": 10**13, "monthly_fen": 10**13}]


def _settings(url: str) -> Any:
    from paycell.config import Settings

    return Settings(database_url=url, kyc_tiers_json=json.dumps(TIERS),
                    operator_api_key=OPERATOR_KEY, run_workers=False, simulators=False,
                    access_token_ttl_s=86_400)


def server_env(url: str) -> dict[str, str]:
    return {**os.environ, "PAYCELL_DATABASE_URL": url,
            "PAYCELL_KYC_TIERS_JSON": json.dumps(TIERS),
            "PAYCELL_OPERATOR_API_KEY": OPERATOR_KEY, "PAYCELL_RUN_WORKERS": "0",
            "PAYCELL_SIMULATORS": "false", "PAYCELL_ACCESS_TOKEN_TTL_S": "86400"}


def _iccid(i: int) -> str:
    from paycell.onsite.cards import luhn_digit

    body = f"8986{7_000_000_000 + i:014d}"
    return body + luhn_digit(body)


def seed(url: str, users: int, on_progress: Callable[[int, int], None] | None = None
         ) -> dict[str, Any]:
    """Migrate and set up through the services; returns the load generator's plan (without
    its run parameters): wallets with their tokens, cards and terminals, and merchants."""
    from paycell.bench.ledger import _flush, _setup_engine
    from paycell.context import build_context
    from paycell.ledger import chart
    from paycell.ledger.model import TransferRequest
    from paycell.merchants.service import add_store, create_active_merchant
    from paycell.migrate import upgrade
    from paycell.onsite import cards, terminals
    from paycell.onsite.keystore import KeyStore
    from paycell.subscribers.service import open_account
    from paycell.subscribers.tokens import login

    tick = on_progress or (lambda _d, _t: None)
    upgrade(url)
    engine = _setup_engine(url)
    settings = _settings(url)
    try:
        ctx = build_context(engine, settings=settings)
        bank = chart.system_account(ctx.ledger, chart.Code.BANK_CLEARING, "bench")
        merchants = []
        for m in range(min(MERCHANTS, users)):
            om = create_active_merchant(ctx, name=f"Bench Shop {m + 1}", category="retail")
            add_store(ctx, om.merchant.id, "S1", f"Bench Shop {m + 1} S1", "1 Nanjing Road",
                      "bench")
            assert om.merchant.payable_account_id is not None
            # Each terminal's deposit comes out of the payable: put it there first.
            ctx.ledger.post_one(TransferRequest(
                f"bench:payable:{om.merchant.id}", bank.id, om.merchant.payable_account_id,
                settings.terminal_deposit_fen * (users // MERCHANTS + 1),
                code=int(chart.TransferCode.TOPUP_BANK), ref="bench payable"))
            merchants.append(om)
        keystore = KeyStore(settings)
        done = [0]

        def one(i: int) -> dict[str, Any]:
            # Opening (argon2 hash) and logging in (argon2 verify) dominate: threads.
            sub = open_account(ctx, f"1391{i:07d}", PIN)
            tokens, _ = login(ctx, sub.msisdn, PIN, f"bench-login-{i}")
            card = cards.activate(ctx, cards.issue_card(ctx, sub, _iccid(i)).id)
            om = merchants[i % len(merchants)]
            reg = terminals.register_terminal(ctx, om.merchant.code, "S1", "bench")
            batch = terminals.sign_on(ctx, reg.terminal)
            done[0] += 1
            tick(done[0], users)
            return {"msisdn": sub.msisdn, "token": tokens.access_token,
                    "wallet_account_id": sub.wallet_account_id,
                    "card": {"pan": card.pan, "psn": card.psn,
                             "key_hex": keystore.card_key_for_personalisation(
                                 card.pan, card.psn).hex()},
                    "terminal": {"terminal_id": reg.terminal.terminal_id,
                                 "key_hex": reg.key_hex, "merchant_code": om.merchant.code,
                                 "store_code": "S1", "batch_no": batch.batch_no}}

        threads = 1 if url.startswith("sqlite") else 4
        with ThreadPoolExecutor(threads) as pool:
            wallets = list(pool.map(one, range(users)))
        results = ctx.ledger.post([
            TransferRequest(id=f"bench:fund:{w['msisdn']}", debit_account_id=bank.id,
                            credit_account_id=w["wallet_account_id"], amount=WALLET_FUNDS,
                            code=int(chart.TransferCode.TOPUP_BANK), ref="bench funding")
            for w in wallets])
        if not all(r.ok for r in results):
            raise RuntimeError(f"funding the bench wallets failed: {results[0].error!r}")
        _flush(engine)
        return {"pin": PIN, "wallets": wallets,
                "merchants": [{"key_id": m.key_id, "secret": m.secret} for m in merchants]}
    finally:
        engine.dispose()
