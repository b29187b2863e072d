"""Importing a statement file into ``recon_lines``: streamed, checked line by line, all or
nothing (one transaction), once per file (by sha256).

Lines go in chunks: COPY on PostgreSQL, executemany on SQLite; memory stays flat whatever
the file's size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from paycell.context import Context
from paycell.reconciliation import formats as fm
from paycell.reconciliation.errors import StatementSourceMismatchError
from paycell.reconciliation.tables import statements

CHUNK = 10_000
_COLS = ("statement_id", "source", "line_no", "serial", "day_no", "direction", "kind",
         "reference", "amount_fen", "memo")
Progress = Callable[[int], None]  # bytes read so far


@dataclass(frozen=True)
class Imported:
    statement_id: int
    created: bool  # False: this very file was imported before


def find_by_sha(conn: Connection, sha: str) -> int | None:
    return conn.execute(select(statements.c.id).where(statements.c.sha256 == sha)).scalar()


def _rows(sid: int, source: str, reader: fm.Reader) -> Iterator[tuple[Any, ...]]:
    for ln in reader:  # Line's fields are _COLS[2:], in order
        yield (sid, source, *ln)


def _copy_pg(conn: Connection, rows: Iterator[tuple[Any, ...]]) -> None:
    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(  # type: ignore[attr-defined]
            f"COPY recon_lines ({', '.join(_COLS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _insert_sqlite(conn: Connection, rows: Iterator[tuple[Any, ...]]) -> None:
    sql = (f"INSERT INTO recon_lines ({', '.join(_COLS)}) "
           f"VALUES ({', '.join('?' for _ in _COLS)})")
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            conn.exec_driver_sql(sql, chunk)
            chunk = []
    if chunk:
        conn.exec_driver_sql(sql, chunk)


class _Tracked:
    """A text stream that reports how far it has read (bytes, approximately)."""

    def __init__(self, stream: Any, progress: Progress | None) -> None:
        self.stream = stream
        self.progress = progress
        self.n = 0

    def __iter__(self) -> _Tracked:
        return self

    def __next__(self) -> str:
        line: str = next(self.stream)
        self.n += 1
        if self.progress is not None and self.n % 20_000 == 0:
            self.progress(self.stream.buffer.tell())
        return line


def import_file(ctx: Context, path: Path, *, source: str | None = None,
                encoding: str | None = None, actor: str = "system",
                progress: Progress | None = None) -> Imported:
    """Import a statement file; idempotent by the file's sha256 (a second import of the same
    bytes returns the first statement). Raises StatementInvalidError (``line``, ``field``),
    StatementEncodingError, StatementSourceMismatchError; nothing is kept on a refusal."""
    sha, enc = fm.scan(path, encoding)
    with ctx.engine.connect() as conn:
        found = find_by_sha(conn, sha)
    if found is not None:
        return Imported(found, False)
    with fm.open_text(path, enc) as text:
        tracked = _Tracked(text, progress)
        reader = fm.Reader(tracked)  # type: ignore[arg-type]
        h = reader.header
        if source is not None and h.source != source:
            raise StatementSourceMismatchError(
                f"the file is a {h.source} statement, not {source}", field="source")
        try:
            with ctx.engine.begin() as conn:
                sid = conn.execute(statements.insert().values(
                    source=h.source, partner=h.partner, business_date=h.business_date,
                    currency=h.currency, sha256=sha, filename=path.name[:300], encoding=enc,
                    lines=0, in_fen=0, out_fen=0, state="importing", imported_by=actor,
                    created_at=ctx.clock.now_us()).returning(statements.c.id)).scalar_one()
                rows = _rows(sid, h.source, reader)
                if conn.dialect.name == "postgresql":
                    _copy_pg(conn, rows)
                else:
                    _insert_sqlite(conn, rows)
                t = reader.totals
                conn.execute(statements.update().where(statements.c.id == sid).values(
                    lines=t.lines, in_fen=t.in_fen, out_fen=t.out_fen, state="imported"))
        except IntegrityError:  # the same file imported at the same time elsewhere
            with ctx.engine.connect() as conn:
                again = find_by_sha(conn, sha)
            if again is None:
                raise
            return Imported(again, False)
    if progress is not None:
        progress(path.stat().st_size)
    return Imported(sid, True)
