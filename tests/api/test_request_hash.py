"""The Idempotency-Key fingerprint (``idempotency.request_hash``): its fast path for plain
JSON bodies gives exactly the text FastAPI's encoder gives, so a retry matches its first
request whichever way either was hashed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from enum import StrEnum
from typing import Any

from fastapi.encoders import jsonable_encoder
from hypothesis import given
from hypothesis import strategies as st

from paycell.api.idempotency import request_hash


def _by_encoder(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(jsonable_encoder(body), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


class Kind(StrEnum):
    DIRECT = "direct"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=True, allow_infinity=True) | st.just(Kind.DIRECT),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)


@given(json_values)
def test_plain_bodies_hash_as_the_encoder_would(body: Any) -> None:
    assert request_hash("POST", "/v1/wallet/transfers", body) == \
        _by_encoder("POST", "/v1/wallet/transfers", body)


def test_other_values_go_through_the_encoder() -> None:
    body = {"at": dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC), "amount": Decimal("1.50"),
            "tags": ("a", "b"), "n": float("nan")}
    assert request_hash("POST", "/x", body) == _by_encoder("POST", "/x", body)
    assert request_hash("POST", "/x", {"a": 1}) != request_hash("POST", "/y", {"a": 1})
