"""The reconciliation tables. Created only by migration ``0015_reconciliation``; this mirrors
it for queries. Times are integer microseconds (UTC); ``day_no`` counts days since
1970-01-01 (a CST business date); amounts integer fen."""

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

metadata = MetaData()
BIGID = BigInteger().with_variant(Integer, "sqlite")

statements = Table(
    "recon_statements", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("source", String(10), nullable=False),  # bank | carrier | transit
    Column("partner", String(40), nullable=False),
    Column("business_date", String(10), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("filename", String(300), nullable=False),
    Column("encoding", String(12), nullable=False),
    Column("lines", BigInteger, nullable=False),
    Column("in_fen", BigInteger, nullable=False),
    Column("out_fen", BigInteger, nullable=False),
    Column("state", String(12), nullable=False),  # imported | classified | posted
    Column("summary_json", Text),
    Column("imported_by", String(80), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("matched_at", BigInteger),
)

lines = Table(
    "recon_lines", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("statement_id", BigInteger, nullable=False),
    Column("source", String(10), nullable=False),
    Column("line_no", BigInteger, nullable=False),
    Column("serial", String(64), nullable=False),
    Column("day_no", Integer, nullable=False),
    Column("direction", String(3), nullable=False),  # in | out (of our account)
    Column("kind", String(12), nullable=False),  # topup | withdrawal | payout | charge | fare
    Column("reference", String(200), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("memo", String(200)),
    Column("category", String(16)),  # matched | missing_ours | amount_mismatch | duplicate
    Column("our_amount_fen", BigInteger),
)

items = Table(
    "recon_items", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("statement_id", BigInteger, nullable=False),
    Column("line_id", BigInteger),
    Column("source", String(10), nullable=False),
    Column("partner", String(40), nullable=False),
    Column("category", String(16), nullable=False),
    Column("kind", String(12), nullable=False),
    Column("direction", String(3), nullable=False),
    Column("reference", String(200), nullable=False),
    Column("their_amount_fen", BigInteger),
    Column("our_amount_fen", BigInteger),
    # > 0: suspense holds money nobody is known to own; < 0: money missing. 0: none moved.
    Column("suspense_fen", BigInteger, nullable=False),
    Column("counter", String(10), nullable=False),  # reserve | clearing | none
    Column("state", String(10), nullable=False),  # open | resolved
    Column("resolution", String(12)),
    Column("created_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger),
)

resolutions = Table(
    "recon_resolutions", metadata,
    Column("id", BIGID, primary_key=True, autoincrement=True),
    Column("item_id", BigInteger, nullable=False, unique=True),
    Column("action", String(12), nullable=False),
    Column("target", String(60)),
    Column("amount_fen", BigInteger, nullable=False),
    Column("transfer_id", String(80)),
    Column("proposed_by", String(80), nullable=False),
    Column("approved_by", String(80)),
    Column("approval_id", BigInteger),
    Column("note", String(500), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
