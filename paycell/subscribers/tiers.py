"""KYC tiers and their limits, configured by ``PAYCELL_KYC_TIERS_JSON`` (pure: no I/O).

Defaults (amounts in CNY; the JSON gives fen):

| tier | who | balance cap | per transaction | daily outflow | monthly outflow |
| --- | --- | ---: | ---: | ---: | ---: |
| 0 | anonymous: MSISDN only | 1,000 | 500 | 1,000 | 2,000 |
| 1 | named: name and ID-document number | 10,000 | 5,000 | 10,000 | 20,000 |
| 2 | verified in person | 100,000 | 50,000 | 50,000 | 200,000 |

The JSON is a list of objects with the fields of :class:`Tier`, e.g.
``[{"tier": 0, "name": "anonymous", "balance_cap_fen": 100000, "per_transaction_fen":
50000, "daily_fen": 100000, "monthly_fen": 200000}, ...]``; tiers must start at 0 and be
consecutive. Outflow days and months are counted in China Standard Time (UTC+8).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CST = timezone(timedelta(hours=8), "CST")


class Tier(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tier: int = Field(ge=0)
    name: str
    balance_cap_fen: int = Field(ge=0)
    per_transaction_fen: int = Field(ge=0)
    daily_fen: int = Field(ge=0)
    monthly_fen: int = Field(ge=0)


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier(tier=0, name="anonymous", balance_cap_fen=100_000, per_transaction_fen=50_000,
         daily_fen=100_000, monthly_fen=200_000),
    Tier(tier=1, name="named", balance_cap_fen=1_000_000, per_transaction_fen=500_000,
         daily_fen=1_000_000, monthly_fen=2_000_000),
    Tier(tier=2, name="verified", balance_cap_fen=10_000_000, per_transaction_fen=5_000_000,
         daily_fen=5_000_000, monthly_fen=20_000_000),
)


@lru_cache(maxsize=16)
def parse_tiers(text: str) -> tuple[Tier, ...]:
    """The tiers a JSON text configures (empty text: the defaults). ValueError if invalid."""
    if not text.strip():
        return DEFAULT_TIERS
    try:
        raw = json.loads(text)
        tiers = tuple(sorted((Tier.model_validate(t) for t in raw), key=lambda t: t.tier))
    except (ValueError, TypeError, ValidationError) as exc:
        raise ValueError(f"PAYCELL_KYC_TIERS_JSON is not a valid list of tiers: {exc}") from exc
    if not tiers or [t.tier for t in tiers] != list(range(len(tiers))):
        raise ValueError("PAYCELL_KYC_TIERS_JSON: tiers must be 0, 1, 2, ... without gaps")
    return tiers


def tier_limits(text: str, level: int) -> Tier:
    """The limits of tier ``level`` (the highest configured tier if ``level`` is beyond)."""
    tiers = parse_tiers(text)
    return tiers[min(max(level, 0), len(tiers) - 1)]


def periods(now_us: int) -> tuple[str, str]:
    """The outflow counting periods containing ``now_us``: ("d2026-01-31", "m2026-01")."""
    local = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=now_us)).astimezone(CST)
    return f"d{local:%Y-%m-%d}", f"m{local:%Y-%m}"
