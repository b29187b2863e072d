"""The demo's reconciliation part: three statements (the bank's in GBK) with every class,
money in suspense, one item resolved by two operators, one left for a newcomer; loading
again changes nothing, also after the newcomer resolved theirs."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, func, select, text

from paycell.config import Settings
from paycell.context import build_context
from paycell.demo import load_demo
from paycell.demo_recon import CHECKER, CLASSES, MAKER, ReconDemo
from paycell.ledger.audit import audit
from paycell.ledger.chart import Code, system_account
from paycell.operators import approvals
from paycell.operators.service import get_operator
from paycell.reconciliation import resolve
from paycell.reconciliation.tables import items, resolutions, statements


def _rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (statements, items, resolutions)}


def _open_suspense(engine: Engine) -> int:
    """What the open items hold in suspense."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(items.c.suspense_fen), 0))
                                .where(items.c.state == "open")).scalar_one())


def test_the_demo_reconciles_three_statements(db_url: str, engine: Engine,
                                              tmp_path: Path) -> None:
    settings = Settings(_env_file=None, database_url=db_url,
                        reports_dir=str(tmp_path / "reports"))
    first = load_demo(engine, out_dir=tmp_path / "var", settings=settings)
    r = first.recon
    assert isinstance(r, ReconDemo)
    assert audit(engine).ok
    assert [(s.source, s.partner, s.encoding, s.state) for s in r.statements] == [
        ("bank", "icbc", "gbk", "posted"), ("carrier", "cmcc", "utf-8", "posted"),
        ("transit", "M100004", "utf-8", "posted")]
    for s in r.statements:  # every class in every statement
        assert all(s.counts[c] >= 1 for c in CLASSES), s
        assert Path(s.file).parent == tmp_path / "reports" / "statements"
        assert Path(s.report).is_file()
    bank = r.statements[0]
    raw = Path(bank.file).read_bytes()
    assert "结算付款".encode("gb18030") in raw  # GBK, as Chinese banks send it
    # our records: 5 card top-ups and 2 withdrawals (one dropped, one changed, one listed
    # twice by the simulated bank) and the settlement payouts the bank paid
    with engine.connect() as conn:
        kinds = dict(conn.execute(text(
            "SELECT kind, COUNT(*) FROM recon_lines WHERE statement_id = :s AND "
            "category = 'matched' GROUP BY kind"), {"s": bank.statement_id}).all())
        paid = conn.execute(text("SELECT COUNT(*) FROM settlement_payouts WHERE "
                                 "state = 'paid'")).scalar_one()
    assert kinds == {"topup": 3, "withdrawal": 2, "payout": paid} and paid >= 1
    assert bank.suspense_fen == -50_000 + 100 + 20_000 + 8_800
    # suspense holds exactly what the open items say
    ctx = build_context(engine, settings=settings)
    acct = system_account(ctx.ledger, Code.SUSPENSE, "recon")
    assert r.suspense_open_fen == acct.credits_posted - acct.debits_posted
    assert r.suspense_open_fen == _open_suspense(engine) != 0
    # one item resolved by two operators, one left open for a newcomer
    with engine.connect() as conn:
        log = conn.execute(select(resolutions)).all()
    assert [(x.action, x.proposed_by, x.approved_by, x.amount_fen) for x in log] == [
        ("pass_on", MAKER, CHECKER, 100)]
    assert r.resolved and r.newcomer_item is not None and r.newcomer_fen == 8_800
    assert resolve.get_item(ctx, r.newcomer_item).state == "open"

    # loading again changes nothing
    before = audit(engine)
    rows = _rows(engine)
    second = load_demo(engine, out_dir=tmp_path / "var", settings=settings)
    again = audit(engine)
    assert again.ok and again.transfers == before.transfers
    assert second.balances == first.balances
    assert second.wallet_total_fen == first.wallet_total_fen
    assert second.recon is not None and second.recon.transfers_created == 0
    assert second.recon.statements == r.statements
    assert _rows(engine) == rows

    # the newcomer writes the unknown credit off (maker-checker); the demo still loads
    maker, checker = get_operator(ctx, MAKER), get_operator(ctx, CHECKER)
    proposed = resolve.resolve(ctx, maker, r.newcomer_item, "write_off", "unknown credit")
    approvals.approve(ctx, checker, int(proposed["approval_id"]))
    third = load_demo(engine, out_dir=tmp_path / "var", settings=settings)
    assert third.recon is not None and third.recon.transfers_created == 0
    assert third.recon.newcomer_item is None
    assert third.recon.suspense_open_fen == r.suspense_open_fen - 8_800
    assert audit(engine).ok
