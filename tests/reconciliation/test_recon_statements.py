"""Importing and matching statements: every discrepancy class, the ledger postings, GBK,
idempotent re-import, refused files."""

from __future__ import annotations

from pathlib import Path

import pytest
from cash_helpers import OPERATOR, fund, idem, wallet  # type: ignore[import-not-found]
from fastapi.testclient import TestClient
from recon_helpers import balance, count_statements, statement, topup, withdrawal
from sqlalchemy import select

from paycell.context import Context
from paycell.ledger.chart import Code
from paycell.reconciliation import service
from paycell.reconciliation.errors import (
    StatementEncodingError,
    StatementInvalidError,
)
from paycell.reconciliation.tables import items


def _world(ctx: Context) -> dict[str, str]:
    sub, _ = wallet(ctx)
    fund(ctx, sub, 10_000)
    return {"t1": topup(ctx, sub, 10_000), "t2": topup(ctx, sub, 5_000),
            "t3": topup(ctx, sub, 3_000), "t4": topup(ctx, sub, 2_000),
            "w1": withdrawal(ctx, sub, 4_000)}


def _lines(r: dict[str, str]) -> list[tuple[str, str, int]]:
    return [("in", r["t1"], 10_000), ("in", r["t2"], 5_100), ("in", r["t4"], 2_000),
            ("in", r["t4"], 2_000), ("out", r["w1"], 4_000), ("in", "topup:tu_nobody", 700)]


def test_every_class_and_the_ledger(ctx: Context, tmp_path: Path) -> None:
    r = _world(ctx)
    s = service.reconcile_file(ctx, statement(tmp_path / "s.csv", _lines(r)), source="bank")
    assert s.created and s.state == "posted"
    assert s.counts == {"matched": 3, "amount_mismatch": 1, "duplicate": 1,
                        "missing_ours": 1, "missing_theirs": 1}
    assert s.confirmed_in_fen == 17_000 and s.confirmed_out_fen == 4_000
    found = {i.category: i for i in service.list_items(ctx)}
    assert found["missing_theirs"].reference == r["t3"]
    assert found["missing_theirs"].suspense_fen == -3_000
    assert found["amount_mismatch"].suspense_fen == 100
    assert found["duplicate"].suspense_fen == 2_000
    assert found["missing_ours"].suspense_fen == 700
    # the reserve got what the bank really moved; the clearing account is square.
    assert balance(ctx, Code.CUSTODY_RESERVE) == 17_000 - 4_000 + 2_800
    assert balance(ctx, Code.BANK_CLEARING, "icbc") == 0
    assert balance(ctx, Code.SUSPENSE, "recon") == 2_800 - 3_000
    report = service.write_report(ctx, s)
    assert "missing_theirs" in report.read_text(encoding="utf-8")


def test_reimport_is_a_no_op(ctx: Context, tmp_path: Path) -> None:
    r = _world(ctx)
    path = statement(tmp_path / "s.csv", _lines(r))
    first = service.reconcile_file(ctx, path)
    reserve = balance(ctx, Code.CUSTODY_RESERVE)
    again = service.reconcile_file(ctx, path)
    assert not again.created and again.statement_id == first.statement_id
    assert again.counts == first.counts
    assert balance(ctx, Code.CUSTODY_RESERVE) == reserve
    assert count_statements(ctx) == 1
    with ctx.engine.connect() as conn:
        assert len(conn.execute(select(items.c.id)).all()) == 4


def test_gbk_statement(ctx: Context, tmp_path: Path) -> None:
    r = _world(ctx)
    path = statement(tmp_path / "gbk.csv", _lines(r), encoding="gbk", memo="工商银行 充值")
    raw = path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    s = service.reconcile_file(ctx, path)
    assert s.counts["matched"] == 3
    assert service.list_statements(ctx)[0]["encoding"] == "gbk"


def test_a_later_line_rematches_a_missing_record(ctx: Context, tmp_path: Path,
                                                client: TestClient) -> None:
    r = _world(ctx)
    service.reconcile_file(ctx, statement(tmp_path / "a.csv", _lines(r)))
    late = service.reconcile_file(ctx, statement(tmp_path / "b.csv", [("in", r["t3"], 3_000)],
                                                 day="2026-01-02"))
    assert late.counts == {"missing_ours": 1}
    theirs = [i for i in service.list_items(ctx) if i.reference == r["t3"]]
    assert sorted(i.suspense_fen for i in theirs) == [-3_000, 3_000]
    a, b = theirs
    got = client.post(f"/v1/operator/reconciliation/items/{a.id}/resolve",
                      headers={**OPERATOR, **idem()},
                      json={"action": "rematch", "with_item": b.id, "note": "late line"})
    assert got.status_code == 200, got.text
    assert not [i for i in service.list_items(ctx) if i.reference == r["t3"]]


@pytest.mark.parametrize(("mangle", "line", "field"), [
    (lambda t: t.replace("100.00", "1O0.00"), 4, "amount"),
    (lambda t: t.replace("100.00", "100.001"), 4, "amount"),
    (lambda t: t.replace(",in,", ",sideways,", 1), 4, "direction"),
    (lambda t: t.replace("source,partner", "src,partner"), 1, "header"),
    (lambda t: t.replace("2026-01-01,in", "2026-13-01,in", 1), 4, "date"),
    (lambda t: t.rsplit("END", 1)[0], 6, "trailer"),
    (lambda t: t.replace("END,2", "END,3"), 6, "trailer"),
])
def test_bad_files_are_refused_naming_the_line(ctx: Context, tmp_path: Path, mangle: object,
                                               line: int, field: str) -> None:
    path = statement(tmp_path / "s.csv", [("in", "topup:tu_a", 10_000),
                                          ("in", "topup:tu_b", 200)])
    path.write_text(mangle(path.read_text(encoding="utf-8")), encoding="utf-8")  # type: ignore[operator]
    with pytest.raises(StatementInvalidError) as exc:
        service.reconcile_file(ctx, path)
    assert exc.value.detail["line"] == line and exc.value.detail["field"] == field
    assert f"line {line}" in exc.value.message
    assert count_statements(ctx) == 0


def test_bad_bytes_and_the_api(ctx: Context, tmp_path: Path, client: TestClient) -> None:
    path = statement(tmp_path / "s.csv", [("in", "topup:tu_a", 100)])
    bad = path.read_bytes().replace("充值".encode(), b"\xff\xfe\xff")
    with pytest.raises(StatementEncodingError):
        (tmp_path / "b.csv").write_bytes(bad)
        service.reconcile_file(ctx, tmp_path / "b.csv", encoding="utf-8")
    got = client.post("/v1/operator/reconciliation/statements?source=bank", headers=OPERATOR,
                      content=path.read_bytes().replace(b"END,1", b"END,7"))
    assert got.status_code == 422 and got.json()["code"] == "statement_invalid"
    assert count_statements(ctx) == 0
    got = client.post("/v1/operator/reconciliation/statements?source=carrier",
                      headers=OPERATOR, content=path.read_bytes())
    assert got.status_code == 422 and got.json()["code"] == "statement_source_mismatch"
    first = client.post("/v1/operator/reconciliation/statements", headers=OPERATOR,
                        content=path.read_bytes())
    assert first.status_code == 201, first.text
    assert first.json()["counts"] == {"missing_ours": 1}
    again = client.post("/v1/operator/reconciliation/statements", headers=OPERATOR,
                        content=path.read_bytes())
    assert again.status_code == 200 and again.json()["statement_id"] == first.json()[
        "statement_id"]


def test_payout_lines(ctx: Context, tmp_path: Path) -> None:
    from sqlalchemy import text

    with ctx.engine.begin() as conn:
        for ref, fen, state in (("PO-1", 50_000, "paid"), ("PO-2", 7_000, "paid"),
                                ("PO-3", 1_000, "returned")):
            conn.execute(text(
                "INSERT INTO settlement_payouts (batch_id, business_date, party_kind, "
                "party_id, account_id, amount_fen, currency, reference, bank, bank_name, "
                "bank_account_last4, state, created_at) VALUES (1, '2026-01-01', 'merchant', "
                "1, 1, :fen, 'CNY', :ref, 'icbc', 'ICBC', '1234', :state, :now)"),
                {"fen": fen, "ref": ref, "state": state, "now": ctx.clock.now_us()})
    sub, _ = wallet(ctx)
    t = topup(ctx, sub, 90_000)  # fills the reserve first
    s = service.reconcile_file(ctx, statement(tmp_path / "p.csv", [
        ("in", t, 90_000), ("out", "PO-1", 50_000), ("out", "PO-3", 1_000)]))
    assert s.counts == {"matched": 2, "missing_ours": 1, "missing_theirs": 1}
    found = {i.reference: i for i in service.list_items(ctx)}
    assert found["PO-3"].category == "missing_ours" and found["PO-3"].suspense_fen == -1_000
    assert found["PO-2"].category == "missing_theirs" and found["PO-2"].suspense_fen == 7_000
    assert s.confirmed_out_fen == 0  # payouts were confirmed by the payout result file
