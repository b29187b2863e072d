"""Settings, read from the environment (prefix ``PAYCELL_``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB_PATH = Path("var") / "paycell.db"
DEV_OPERATOR_KEY = "dev-operator-key"
DEV_SECRET_KEY = "dev-secret-key"
DEV_VOUCHER_KEY = "dev-voucher-key"
DEV_ISSUER_MK = "0123456789ABCDEFFEDCBA9876543210"  # development only


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYCELL_", env_file=".env", extra="ignore")

    environment: str = "development"
    database_url: str = f"sqlite:///{DEFAULT_DB_PATH}"
    host: str = "127.0.0.1"
    port: int = 8000
    # Operators authenticate with this key until the back office brings logins.
    operator_api_key: str = DEV_OPERATOR_KEY
    # Hot accounts (fees, commission revenue) are spread over this many shard rows.
    hot_account_shards: int = 16
    # Largest number of transfers the group-commit batcher writes in one transaction.
    batch_max: int = 8190
    # How often the in-process worker looks for expired holds, in seconds.
    expiry_interval_s: int = 5
    run_workers: bool = True
    # Threads per API process running blocking handlers (database work). Few: the GIL lets
    # one run Python at a time, and 40 (anyio's default) spent CPU handing it round.
    api_threads: int = 8
    # The hot payment routes skip FastAPI's per-request dependency machinery (api/lean.py);
    # off, every request takes FastAPI's own path (the same answers, more CPU).
    lean_routes: bool = True
    # FastAPI's native OpenTelemetry (traces, metrics, logs to the providers an operator
    # configures): off, each request skips asking the OTel providers (about 6 us each).
    otel: bool = False
    # A directory where each API process's desks log their batches (api/desk.py), one line
    # per batch; empty: no log. The HTTP benchmark sets it to show what the desks did.
    desk_log_dir: str = ""
    # -- subscribers (docs/wallets.md) --
    # Keys HMACs of ID-document numbers and of PINs in idempotency fingerprints.
    secret_key: str = DEV_SECRET_KEY
    # KYC tiers and their limits as JSON; empty means the defaults in subscribers/tiers.py.
    kyc_tiers_json: str = ""
    # Wrong PINs in a row before PIN use is locked, and for how long.
    pin_max_failures: int = 5
    pin_lock_s: int = 1800
    # Access tokens live 15 minutes, refresh tokens 30 days.
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 86_400
    # SMS one-time codes (PIN reset): lifetime, tries, and how many may be sent an hour.
    sms_code_ttl_s: int = 300
    sms_code_max_attempts: int = 3
    sms_codes_per_hour: int = 5
    # -- vouchers, agents, P2P (docs/wallets.md) --
    # Keys the HMAC-SHA256 of recharge-voucher secrets. Changing it makes every unredeemed
    # card unusable, so it is kept apart from secret_key and never rotated casually.
    voucher_secret_key: str = DEV_VOUCHER_KEY
    # Wrong voucher secrets from one wallet within the window lock its redemptions this long.
    voucher_max_failures: int = 5
    voucher_failure_window_s: int = 86_400
    voucher_lock_s: int = 86_400
    # Largest voucher batch generated at once.
    voucher_batch_max: int = 100_000
    # A P2P transfer to an unregistered number waits this long, then returns to the sender.
    p2p_claim_timeout_s: int = 7 * 86_400
    # How often the worker delivers claimable P2P transfers and returns expired ones.
    p2p_job_interval_s: int = 30
    # -- cards, top-ups, withdrawals (docs/wallets.md, docs/gateways.md) --
    # The loopback bank and carrier simulators, mounted under /sim/bank and /sim/carrier
    # of `paycell serve`; None means: on in development, off elsewhere.
    simulators: bool | None = None
    # Base URLs of the bank and carrier billing APIs. Empty: the mounted simulators (at
    # this server's own host and port) when they are on, otherwise no bank / no carrier.
    bank_url: str = ""
    carrier_url: str = ""
    # The carrier's short code: names its receivable account (carrier_receivable:<code>).
    carrier_name: str = "cmcc"
    # How long a call to the bank or carrier may take before its answer counts as unknown.
    gateway_timeout_s: float = 10.0
    # Withdrawal fee: rate in basis points (10 = 0.1%), rounded half up to the fen,
    # at least min and at most max fen.
    withdrawal_fee_bp: int = 10
    withdrawal_fee_min_fen: int = 100
    withdrawal_fee_max_fen: int = 2_500
    # Top-ups charged to the phone bill: at most this much per subscriber per calendar
    # month (China Standard Time).
    phone_bill_monthly_cap_fen: int = 50_000
    # Unknown outcomes: first status query this long after the call, then every interval.
    funding_query_after_s: int = 30
    funding_job_interval_s: int = 15
    # A partner that has no record of an operation this long after we sent it never got
    # it: the operation fails (nothing moved at the partner).
    funding_not_found_grace_s: int = 600
    # -- merchants (docs/merchant-api.md) --
    # Signed merchant requests: the timestamp may be this far off our clock either way, and
    # nonces are remembered this long (twice the window covers both directions).
    signature_window_s: int = 300
    # A rotated webhook secret keeps signing notifications (beside the new one) this long.
    webhook_secret_overlap_s: int = 86_400
    # -- payment orders (docs/payments.md) --
    # An order not paid within this many seconds (unless the merchant says otherwise) closes.
    payment_default_expiry_s: int = 900
    payment_max_expiry_s: int = 7 * 86_400
    # Escrow: released to the merchant this many days after payment unless the buyer
    # confirmed receipt earlier or opened a dispute.
    escrow_auto_release_days: int = 10
    # How often the worker closes expired orders and auto-releases escrow.
    payment_job_interval_s: int = 5
    # -- merchant notifications (docs/notifications.md) --
    # Delays before each retry after a failed attempt (WeChat Pay's schedule); after the
    # last one the notification is given up (operators may still re-send it by hand).
    notify_schedule: str = "15s,15s,30s,3m,10m,20m,30m,30m,30m,60m,3h,3h,3h,6h,6h"
    notify_timeout_s: float = 5.0
    # May notifications go to private, loopback or link-local addresses? Unset: only in
    # development (paycell/notifications/guard.py).
    notify_private_addresses: bool | None = None
    notify_job_interval_s: float = 1.0
    notify_batch: int = 50
    # -- SMS (docs/sms.md) --
    # "record": texts go to the sms_messages table (development); "smpp": to an SMSC.
    sms_backend: str = "record"
    smpp_host: str = "127.0.0.1"
    smpp_port: int = 2775
    smpp_system_id: str = "paycell"
    smpp_password: str = ""
    # The short code subscribers see texts from and reply to.
    sms_source_addr: str = "10690000"

    # -- on-site payment (docs/onsite.md) --
    # The issuer master key (16-byte double-length 3DES key, hex) from which each card's
    # key is derived (EMV option A). Refused outside development while it is the default.
    onsite_issuer_master_key: str = DEV_ISSUER_MK
    # The seed's cap: at most 500 CNY a transaction, on-site.
    onsite_max_txn_fen: int = 50_000
    # Taps up to this amount need no PIN (小额免密); above it the terminal sends one.
    onsite_no_pin_limit_fen: int = 30_000
    # The deposit each POS terminal the operator deploys costs its merchant.
    terminal_deposit_fen: int = 100_000
    # The most an offline e-cash purse may hold (PBOC e-cash: 1,000 CNY at most).
    ecash_purse_limit_fen: int = 100_000
    # OTA: a job not confirmed within this long is sent again, at most this many times.
    ota_retry_after_s: int = 300
    ota_max_attempts: int = 3
    onsite_job_interval_s: int = 15
    # -- clearing, settlement, partners, reconciliation (docs/settlement.md, docs/partners.md,
    # docs/reconciliation.md) --
    # A business date D (China Standard Time) covers [D-1 cut-off, D cut-off): "00:00" means
    # the calendar day. The cut-off is local CST time, HH:MM.
    clearing_cutoff: str = "00:00"
    # Clearing for a date runs this long after its cut-off at the earliest (late commits).
    clearing_grace_s: int = 300
    # The bank that holds the custody reserve and sends settlement payouts.
    settlement_bank: str = "icbc"
    # Card-funded payments: the merchant fee split issuer/acquirer/network, in percent.
    card_fee_split: str = "70/20/10"
    card_network: str = "unionpay"
    # Channel partners: a merchant earns its partner the expansion fee once it has been
    # active this many days with at least this many transactions.
    partner_expansion_days: int = 90
    partner_expansion_min_txns: int = 30
    # POS maintenance paid to the partner, per terminal per month (55 CNY).
    pos_maintenance_fen: int = 5_500
    # Where settlement, partner and reconciliation reports and files are written.
    reports_dir: str = "var/reports"
    # Reconciliation: a statement line matches our record within this many days.
    recon_date_window_days: int = 2
    settlement_job_interval_s: int = 60

    @model_validator(mode="after")
    def _refuse_dev_secrets(self) -> Settings:
        if self.environment != "development" and self.operator_api_key == DEV_OPERATOR_KEY:
            raise ValueError(
                "PAYCELL_OPERATOR_API_KEY still has the development default; "
                "set a secret of your own outside development"
            )
        if self.environment != "development" and self.secret_key == DEV_SECRET_KEY:
            raise ValueError("PAYCELL_SECRET_KEY still has the development default; "
                             "set a secret of your own outside development")
        if self.environment != "development" and self.voucher_secret_key == DEV_VOUCHER_KEY:
            raise ValueError("PAYCELL_VOUCHER_SECRET_KEY still has the development default; "
                             "set a secret of your own outside development")
        if self.environment != "development" and self.onsite_issuer_master_key == DEV_ISSUER_MK:
            raise ValueError("PAYCELL_ONSITE_ISSUER_MASTER_KEY still has the development "
                             "default; set a key of your own outside development")
        return self

    @model_validator(mode="after")
    def _check_notify_schedule(self) -> Settings:
        from paycell.notifications.schedule import parse_schedule

        parse_schedule(self.notify_schedule)  # a ValueError that says what is wrong
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
