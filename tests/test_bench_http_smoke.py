"""Smoke test of ``paycell bench http``: SQLite only, a few users for a few seconds, every
flow of the mix; the shape of the JSON and 100% success, no timing assertions."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from paycell.bench import http as hb
from paycell.bench.docs import DOCS_END, DOCS_START

RECORD_KEYS = {
    "database", "workers", "users", "seconds", "payments", "payments_per_s", "requests_per_s",
    "p50_ms", "p95_ms", "p99_ms", "success_rate", "failures", "server_rss_peak_mb",
    "server_cpu_cores", "loadgen_cpu_cores", "flows", "errors", "target_met",
}
FLOW_KEYS = {"completed", "failed", "per_s", "requests", "success_rate", "p50_ms", "p95_ms",
             "p99_ms", "errors"}


@pytest.mark.sqlite_only
def test_http_bench_on_sqlite(tmp_path: Path) -> None:
    out = tmp_path / "results" / "http.json"
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# intro kept\n\n{DOCS_START}\nledger figures kept\n{DOCS_END}\n\n"
                    f"{hb.DOCS_START}\nold figures\n{hb.DOCS_END}\n\ntail kept\n")
    mix = {"p2p": 1.0, "remote": 1.0, "nfc": 1.0}
    hb.run(["sqlite"], seconds=2, warmup=0.5, users=3, workers=1, mix=mix, out=out,
           docs=docs, workdir=tmp_path, rate=15, rate_users=6, rate_databases=["sqlite"])

    data = json.loads(out.read_text())
    assert set(data) >= {"generated_at", "machine", "method", "records"}
    assert data["method"]["mix"] == mix
    r, o = data["records"]
    assert set(r) >= RECORD_KEYS
    assert (r["database"], r["users"], r["workers"]) == ("sqlite", 3, 1)
    assert r["failures"] == 0 and r["success_rate"] == 1.0, r["errors"]
    assert r["analyze_s"] is None  # statistics are refreshed on PostgreSQL only
    assert r["payments"] > 0 and r["server_rss_peak_mb"] > 0
    assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
    assert set(r["flows"]) == {"p2p", "remote", "nfc"}
    for name, f in r["flows"].items():
        assert set(f) >= FLOW_KEYS, name
        assert f["failed"] == 0, (name, f["errors"])
    assert r["flows"]["remote"]["requests"] == 2 * r["flows"]["remote"]["completed"]
    lat = r["request_latency"]  # each request on its own: a remote payment is two
    assert set(lat) == {"overall", "p2p", "order-create", "confirm", "nfc"}
    for name, q in lat.items():
        assert q["failed"] == 0 and q["count"] > 0, name
        assert 0 < q["p50_ms"] <= q["p95_ms"] <= q["p99_ms"], name
    assert lat["overall"]["count"] == sum(q["count"] for k, q in lat.items() if k != "overall")
    desks = r["desks"]  # what the API's desks did in the window, per kind of batch
    assert set(desks) >= {"p2p", "order-create", "orders", "nfc", "sessions"}, desks
    for kind, d in desks.items():
        assert d["batches_per_s"] > 0 and d["requests_per_batch"] >= 1, kind
        assert d["wall_ms"] > 0 and 0 < d["desk_busy"] <= 1, kind
    b = data["baseline"]  # the bare stack, same client, same workers
    assert b["requests_per_s"] > 0 and b["errors"] == 0 and (b["users"], b["workers"]) == (3, 1)

    text = docs.read_text()
    assert text.startswith("# intro kept") and text.rstrip().endswith("tail kept")
    assert "ledger figures kept" in text and "old figures" not in text
    assert text.count(hb.DOCS_START) == 1 and "| sqlite | nfc |" in text
    assert "| sqlite | confirm |" in text and "| sqlite | overall |" in text
    assert "Baseline, same run: the bare stack" in text
    assert "| sqlite | payments | nfc |" in text and "| sqlite | sessions | sessions |" in text

    # the charts beside the JSON, linked from the docs by a path relative to them
    for name in ("throughput", "latency"):
        svg = out.with_name(f"http-{name}.svg")
        root = ET.fromstring(svg.read_text())
        assert root.findall("{http://www.w3.org/2000/svg}polyline"), name
        assert f"](results/http-{name}.svg)" in text
    assert [p["t"] for p in r["timeline"]] == [1.0, 2.0, 3.0]  # 0.5 s warm-up + 2 s
    assert sum(p["payments_per_s"] for p in r["timeline"]) >= r["payments"]

    # the open loop: 15 payments due a second, so 30 in the 2 s window (due at 8/15 s to
    # 37/15 s), each followed to its end; one started with no idle user would be dropped
    assert (o["database"], o["users"], o["offered_per_s"], r["offered_per_s"]) == (
        "sqlite", 6, 15, None)
    assert (o["load"], r["load"], o["label"]) == ("open, 15/s", "closed, 3 users",
                                                   "sqlite at 15/s")
    assert o["failures"] == 0, o["errors"]
    assert o["payments"] + o["dropped"] == 30 and o["dropped_total"] >= o["dropped"]
    assert o["payments_per_s"] == o["payments"] / 2
    assert "| sqlite at 15/s | remote |" in text and "open: 15/s offered (6 users)" in text
    assert "15 payments/s offered (open loop)" in text


@pytest.mark.postgres_only
def test_statistics_refreshed(db_url: str) -> None:
    """The warm-up's ANALYZE: a table filled since the last one gets its real size, so the
    planner stops planning for an empty table."""
    import psycopg

    from paycell.devtools.pgserver import libpq_url

    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE grown (id bigint PRIMARY KEY)")
        conn.execute("INSERT INTO grown SELECT generate_series(1, 5000)")

        def tuples() -> float:
            row = conn.execute("SELECT reltuples FROM pg_class WHERE relname = 'grown'").fetchone()
            assert row is not None
            return float(row[0])

        assert tuples() < 0  # never analyzed
        assert hb.refresh_statistics(db_url) >= 0
        assert tuples() == 5000


def test_open_loop_latency_runs_from_when_a_payment_was_due() -> None:
    """k6's constant-arrival-rate: a flow is due every 1/rate s whatever became of the
    earlier ones; it starts with an idle user, or is dropped when there is none, and its
    latency runs from when it was due."""
    import asyncio
    import time

    from paycell.bench import loadgen as lg

    async def slow(_conn: object, _st: object, _u: object, _rng: object
                   ) -> tuple[str | None, int]:
        await asyncio.sleep(0.05)
        return None, 1

    users = [lg.User(i, f"1391000000{i}", "t", None, {})  # type: ignore[arg-type]
             for i in range(2)]
    st = lg.State({}, users, [], rate=100.0)
    saved = dict(lg.RUNNERS)
    lg.RUNNERS["slow"] = slow
    try:
        async def go() -> None:
            st.began = time.perf_counter()
            st.stop_at = st.began + 0.2
            await lg._arrivals([object(), object()], st, ["slow"], [1.0], 7)  # type: ignore[list-item]
        asyncio.run(go())
    finally:
        lg.RUNNERS.clear()
        lg.RUNNERS.update(saved)
    assert len(st.done) == 20  # due at 0, 10, ..., 190 ms
    dues = sorted(d.began - st.began for d in st.done)
    assert dues == pytest.approx([k / 100 for k in range(20)])
    ran = [d for d in st.done if d.code != lg.DROPPED]
    dropped = [d for d in st.done if d.code == lg.DROPPED]
    assert ran and dropped  # two users, each busy 50 ms, cannot take one every 10 ms
    assert all(d.ok and d.ended - d.began >= 0.05 for d in ran)
    assert all(not d.ok and d.requests == 0 for d in dropped)
    assert lg._stats(st.done, 0.2)["dropped"] == len(dropped)


def test_mix_parsed() -> None:
    assert hb.parse_mix("p2p=3, nfc=1") == {"p2p": 3.0, "nfc": 1.0}
    assert hb.parse_mix("remote") == {"remote": 1.0}
    for bad in ("card=1", "p2p=x", "p2p=-1", "p2p=0"):
        with pytest.raises(ValueError):
            hb.parse_mix(bad)


def test_process_tree_usage() -> None:
    import os

    rss, cpu = hb.tree_usage(os.getpid())
    assert rss > 0 and cpu > 0
    assert os.getpid() in hb.process_tree(os.getpid())
