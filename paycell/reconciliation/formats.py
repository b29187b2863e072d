"""The statement file format (docs/reconciliation.md), read and written as a stream.

```
source,partner,date,currency
bank,icbc,2026-11-25,CNY
serial,date,direction,reference,amount,memo
BK00000001,2026-11-25,in,topup:tu_9a…,100.00,充值
END,1,100.00,0.00
```
Line 1-2: what the statement is; line 3: the column names; then one line per movement;
last: ``END,<lines>,<total in>,<total out>`` so that a truncated file is refused. UTF-8
(with or without BOM) or GBK. Pure: reads the lines it is given, no database.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, NamedTuple

from paycell.money import AmountFormatError, format_amount, parse_amount
from paycell.reconciliation.errors import StatementEncodingError, StatementInvalidError

SOURCES = ("bank", "carrier", "transit")
HEADER = ["source", "partner", "date", "currency"]
COLUMNS = ["serial", "date", "direction", "reference", "amount", "memo"]
DIRECTIONS = ("in", "out")
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
ENCODINGS = {"utf-8": "utf-8-sig", "utf8": "utf-8-sig", "gbk": "gb18030", "gb18030": "gb18030"}
# The usual shape of an amount ("1234.50"): read without the general parser; anything else
# goes through paycell.money.parse_amount, which says what is wrong with it.
_PLAIN_AMOUNT = re.compile(r"([0-9]{1,15})\.([0-9]{2})")


@dataclass(frozen=True, slots=True)
class Header:
    source: str
    partner: str
    business_date: str
    currency: str


class Line(NamedTuple):  # a tuple: a million of them are made per large statement
    line_no: int
    serial: str
    day_no: int
    direction: str
    kind: str
    reference: str
    amount_fen: int
    memo: str


@dataclass
class Totals:
    lines: int = 0
    in_fen: int = 0
    out_fen: int = 0


def day_no(d: date) -> int:
    return d.toordinal() - EPOCH_ORDINAL


def kind_of(source: str, reference: str) -> str:
    """What a line is, from its source and our reference's prefix."""
    if source == "carrier":
        return "charge"
    if source == "transit":
        return "fare"
    if reference.startswith("topup:"):
        return "topup"
    if reference.startswith("withdrawal:"):
        return "withdrawal"
    return "payout"


def scan(path: Path, encoding: str | None) -> tuple[str, str]:
    """One pass over the bytes: their sha256 and the encoding (given, or UTF-8 if every
    byte decodes as UTF-8, else GBK). Streams in 1 MiB blocks."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            if utf8 and encoding is None:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    utf8 = False
    if encoding is not None:
        key = encoding.lower()
        if key not in ENCODINGS:
            raise StatementEncodingError(f"unknown encoding {encoding!r}: use utf-8 or gbk",
                                         field="encoding")
        return digest.hexdigest(), "gbk" if ENCODINGS[key] == "gb18030" else "utf-8"
    return digest.hexdigest(), "utf-8" if utf8 else "gbk"


def _bad(line: int, field: str, message: str) -> StatementInvalidError:
    return StatementInvalidError(f"line {line}: {message}", line=line, field=field)


def _date(text: str, line: int, field: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise _bad(line, field, f"{field} is YYYY-MM-DD; got {text!r}") from None


def _amount(text: str, line: int, field: str, currency: str, *, signed: bool = False) -> int:
    m = _PLAIN_AMOUNT.fullmatch(text) if currency == "CNY" else None
    if m is not None and (value := int(m[1]) * 100 + int(m[2])) > 0:
        return value
    try:
        value = parse_amount(text, currency)
    except AmountFormatError as exc:
        raise _bad(line, field, f"bad {field}: {exc}") from None
    if value <= 0 and not signed:
        raise _bad(line, field, f"{field} must be positive; got {text!r}")
    return value


class Reader:
    """Iterate a statement's lines, checking everything: ``header`` is read first, the
    totals are checked against the trailer when the iteration ends."""

    def __init__(self, stream: IO[str]) -> None:
        self._rows = csv.reader(stream)
        self.totals = Totals()
        self.header = self._header()

    def _next(self, what: str) -> list[str]:
        try:
            return next(self._rows)
        except StopIteration:
            raise _bad(self._rows.line_num + 1, what, f"the file ends before the {what}") from None
        except UnicodeDecodeError:
            raise StatementEncodingError(
                f"line {self._rows.line_num + 1}: bytes that are not in the file's encoding",
                line=self._rows.line_num + 1) from None
        except csv.Error as exc:
            raise _bad(self._rows.line_num, what, f"unreadable CSV: {exc}") from None

    def _header(self) -> Header:
        names = [c.strip().lstrip("\ufeff") for c in self._next("header")]
        if names != HEADER:
            raise _bad(1, "header", f"the first line is {','.join(HEADER)}")
        values = [c.strip() for c in self._next("header")]
        if len(values) != 4:
            raise _bad(2, "header", "the second line is source,partner,date,currency")
        source, partner, day, currency = values
        if source not in SOURCES:
            raise _bad(2, "source", f"source is one of {', '.join(SOURCES)}; got {source!r}")
        if not 0 < len(partner) <= 40:
            raise _bad(2, "partner", "partner is 1 to 40 characters")
        _date(day, 2, "date")
        if currency != "CNY":
            raise _bad(2, "currency", f"statements are in CNY; got {currency!r}")
        if [c.strip() for c in self._next("column names")] != COLUMNS:
            raise _bad(3, "columns", f"the third line is {','.join(COLUMNS)}")
        return Header(source, partner, day, currency)

    def __iter__(self) -> Iterator[Line]:
        cur = self.header.currency
        days: dict[str, int] = {}  # a statement has few distinct dates: parse each once
        while True:
            row = self._next("trailer")
            n = self._rows.line_num
            if row and row[0] == "END":
                self._trailer(row, n)
                return
            if len(row) != 6:
                raise _bad(n, "columns", f"a line has 6 columns ({','.join(COLUMNS)}); "
                                         f"this one has {len(row)}")
            serial, day, direction, reference, amount, memo = [c.strip() for c in row]
            if not 0 < len(serial) <= 64:
                raise _bad(n, "serial", "serial is 1 to 64 characters")
            if direction not in DIRECTIONS:
                raise _bad(n, "direction", f"direction is in or out; got {direction!r}")
            if not 0 < len(reference) <= 200:
                raise _bad(n, "reference", "reference is 1 to 200 characters")
            fen = _amount(amount, n, "amount", cur)
            self.totals.lines += 1
            if direction == "in":
                self.totals.in_fen += fen
            else:
                self.totals.out_fen += fen
            if (d := days.get(day)) is None:
                d = days[day] = day_no(_date(day, n, "date"))
            yield Line(n, serial, d, direction,
                       kind_of(self.header.source, reference), reference, fen, memo[:200])

    def _trailer(self, row: list[str], n: int) -> None:
        if len(row) != 4:
            raise _bad(n, "trailer", "the last line is END,<lines>,<total in>,<total out>")
        if not row[1].strip().isdigit() or int(row[1]) != self.totals.lines:
            raise _bad(n, "trailer", f"the trailer counts {row[1]!r} lines; "
                                     f"the file has {self.totals.lines}")
        cur = self.header.currency
        tin = _amount(row[2].strip(), n, "total in", cur, signed=True)
        tout = _amount(row[3].strip(), n, "total out", cur, signed=True)
        if (tin, tout) != (self.totals.in_fen, self.totals.out_fen):
            raise _bad(n, "trailer", "the trailer's totals are not the sum of the lines: "
                       f"in {format_amount(self.totals.in_fen)}, "
                       f"out {format_amount(self.totals.out_fen)}")
        extra = next(self._rows, None)
        if extra is not None and any(c.strip() for c in extra):
            raise _bad(n + 1, "trailer", "nothing may follow the END line")


def open_text(path: Path, encoding: str) -> IO[str]:
    return path.open("r", encoding=ENCODINGS[encoding], newline="", errors="strict")


# -- writing -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OutLine:
    serial: str
    day: str  # YYYY-MM-DD
    direction: str
    reference: str
    amount_fen: int
    memo: str = ""


def write(path: Path, header: Header, out_lines: Iterable[OutLine], *,
          encoding: str = "utf-8") -> Totals:
    """Write a statement file, streaming: a generator of any length is fine."""
    totals = Totals()
    with path.open("w", encoding="gb18030" if encoding == "gbk" else "utf-8",
                   newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        w.writerow([header.source, header.partner, header.business_date, header.currency])
        w.writerow(COLUMNS)
        for ln in out_lines:
            w.writerow([ln.serial, ln.day, ln.direction, ln.reference,
                        format_amount(ln.amount_fen), ln.memo])
            totals.lines += 1
            if ln.direction == "in":
                totals.in_fen += ln.amount_fen
            else:
                totals.out_fen += ln.amount_fen
        w.writerow(["END", totals.lines, format_amount(totals.in_fen),
                    format_amount(totals.out_fen)])
    return totals
