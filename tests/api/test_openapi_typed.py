"""Every JSON answer of the operator's settlement and reconciliation endpoints has a schema
in the OpenAPI document (they used to answer untyped objects)."""

from __future__ import annotations

from paycell.api.app import create_app
from paycell.config import Settings


def test_settlement_and_reconciliation_answers_have_schemas() -> None:
    doc = create_app(Settings(_env_file=None)).openapi()
    checked = 0
    for path, ops in doc["paths"].items():
        if not path.startswith(("/v1/operator/settlement", "/v1/operator/reconciliation")):
            continue
        for method, op in ops.items():
            for status, resp in op["responses"].items():
                if not status.startswith("2"):
                    continue
                schema = resp.get("content", {}).get("application/json", {}).get("schema")
                if schema is None:
                    continue  # a CSV or an empty answer
                assert schema, f"{method.upper()} {path} {status}: no schema"
                checked += 1
    assert checked >= 14
