"""Commission rules: pure arithmetic, no I/O, no clock (docs/settlement.md).

A rule is a ``kind`` with integer ``params`` (JSON on the wire and in the table):

- ``percentage`` ``{"bp": 100}``: bp of the gross, 0-200 (0-2 %);
- ``revenue_share`` ``{"bp": 1000}``: bp of the revenue, 1-5,000 (a fast-food chain, 10 %);
- ``discount`` ``{"paid_bp": 8000, "settle_bp": 6000}``: the user pays ``paid_bp`` of the
  list price, the merchant is settled at ``settle_bp`` of list: commission =
  gross x (paid - settle) / paid;
- ``fixed`` ``{"fen": 50}``: fen per sale, 0-10,000, never more than the day's gross;
- ``tiered`` ``{"tiers": [{"up_to_fen": 10000000, "bp": 60}, {"up_to_fen": null, "bp": 30}]}``:
  marginal by month-to-date gross, like tax brackets; each bracket's bp 0-200;
- ``none`` ``{}``.

Every split goes through :func:`paycell.money.allocate` (largest remainder): with two parts
that is "round half to the commission", and the commission plus the merchant's part is
always the whole gross. Refunds give commission back with the same split (``percentage``,
``revenue_share``, ``discount``), at the marginal rate reached (``tiered``), or not at all
(``fixed``: the per-sale fee pays for processing the sale; ``none``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from paycell.errors import InvalidRequestError
from paycell.money import allocate

KINDS = ("percentage", "revenue_share", "discount", "fixed", "tiered", "none")
WHOLE = 10_000  # basis points in 100 %


class RuleInvalidError(InvalidRequestError):
    """A commission rule's kind or parameters are out of range (``field`` says which)."""

    code = "commission_rule_invalid"


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    params: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(self.params, sort_keys=True)


NONE = Rule("none", {})


def _int(params: dict[str, Any], name: str, lo: int, hi: int) -> int:
    value = params.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise RuleInvalidError(f"{name} is a whole number from {lo} to {hi}", field=name)
    return value


def parse_rule(kind: str, params: dict[str, Any] | None) -> Rule:
    """Validate a rule; :class:`RuleInvalidError` (naming the field) if it is not one."""
    params = dict(params or {})
    if kind not in KINDS:
        raise RuleInvalidError(f"kind is one of {', '.join(KINDS)}", field="kind")
    if kind == "percentage":
        clean: dict[str, Any] = {"bp": _int(params, "bp", 0, 200)}
    elif kind == "revenue_share":
        clean = {"bp": _int(params, "bp", 1, 5_000)}
    elif kind == "discount":
        paid = _int(params, "paid_bp", 1, WHOLE)
        clean = {"paid_bp": paid, "settle_bp": _int(params, "settle_bp", 0, paid)}
    elif kind == "fixed":
        clean = {"fen": _int(params, "fen", 0, 10_000)}
    elif kind == "tiered":
        clean = {"tiers": _tiers(params.get("tiers"))}
    else:
        clean = {}
    extra = set(params) - set(clean)
    if extra:
        raise RuleInvalidError(f"unknown parameter {sorted(extra)[0]} for {kind}",
                               field=sorted(extra)[0])
    return Rule(kind, clean)


def _tiers(raw: Any) -> list[dict[str, int | None]]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= 10:
        raise RuleInvalidError("tiers is a list of 1 to 10 brackets", field="tiers")
    out: list[dict[str, int | None]] = []
    last = 0
    for i, t in enumerate(raw):
        if not isinstance(t, dict) or set(t) != {"up_to_fen", "bp"}:
            raise RuleInvalidError("a bracket is {up_to_fen, bp}", field="tiers")
        bp = _int(t, "bp", 0, 200)
        up = t["up_to_fen"]
        final = i == len(raw) - 1
        if final and up is not None:
            raise RuleInvalidError("the last bracket has up_to_fen null", field="tiers")
        if not final and (not isinstance(up, int) or isinstance(up, bool) or up <= last):
            raise RuleInvalidError("up_to_fen rises from bracket to bracket", field="tiers")
        out.append({"up_to_fen": up, "bp": bp})
        last = up or last
    return out


def rule_of(kind: str, params_json: str) -> Rule:
    return parse_rule(kind, json.loads(params_json))


def share(amount: int, bp: int, of: int = WHOLE) -> int:
    """The commission part of ``amount`` at ``bp``/``of``: ``allocate(amount, [bp, of-bp])[0]``."""
    if amount == 0 or bp == 0:
        return 0
    return allocate(amount, [bp, of - bp])[0]


def tiered_total(volume: int, tiers: list[dict[str, int | None]]) -> int:
    """Commission on a month-to-date volume: each bracket's slice at its own bp."""
    total, low = 0, 0
    for t in tiers:
        up = t["up_to_fen"]
        bp = t["bp"]
        assert bp is not None
        top = volume if up is None else min(volume, up)
        if top > low:
            total += share(top - low, bp)
        if up is None or volume <= up:
            break
        low = up
    return total


def marginal_bp(volume: int, tiers: list[dict[str, int | None]]) -> int:
    """The bp of the bracket ``volume`` has reached (the next fen's rate)."""
    for t in tiers:
        up = t["up_to_fen"]
        if up is None or volume < up:
            bp = t["bp"]
            assert bp is not None
            return bp
    raise AssertionError("the last bracket is open")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Commission:
    commission_fen: int
    returned_fen: int


def commission(rule: Rule, *, gross_fen: int, sales: int, refunds_fen: int,
               month_before_fen: int = 0) -> Commission:
    """A business day's commission on ``gross_fen`` (``sales`` of them) and what is given
    back on ``refunds_fen``. ``month_before_fen``: the month's gross on earlier days
    (``tiered`` only). Both results are whole fen, 0 <= commission <= gross."""
    p = rule.params
    if rule.kind in ("percentage", "revenue_share"):
        return Commission(share(gross_fen, p["bp"]), share(refunds_fen, p["bp"]))
    if rule.kind == "discount":
        paid, settle = p["paid_bp"], p["settle_bp"]
        return Commission(share(gross_fen, paid - settle, paid),
                          share(refunds_fen, paid - settle, paid))
    if rule.kind == "fixed":
        return Commission(min(sales * p["fen"], gross_fen), 0)
    if rule.kind == "tiered":
        after = month_before_fen + gross_fen
        day = tiered_total(after, p["tiers"]) - tiered_total(month_before_fen, p["tiers"])
        return Commission(day, share(refunds_fen, marginal_bp(after, p["tiers"])))
    return Commission(0, 0)


def card_shares(fee_fen: int, split: str) -> tuple[int, int, int]:
    """Split a card-funded fee into (issuer, acquirer, network) by ``split`` ("70/20/10")."""
    weights = parse_split(split)
    issuer, acquirer, network = allocate(fee_fen, weights)
    return issuer, acquirer, network


def parse_split(split: str) -> list[int]:
    try:
        weights = [int(x) for x in split.split("/")]
    except ValueError:
        weights = []
    if len(weights) != 3 or any(w < 0 for w in weights) or sum(weights) == 0:
        raise ValueError(f"card_fee_split is issuer/acquirer/network, e.g. 70/20/10; got {split!r}")
    return weights
