"""Memory with pending delays, and history at scale: `runs list`/`runs show` latency with
a large store, and ingest latency while retention prunes it."""

from __future__ import annotations

import math
import shutil
import sqlite3
import statistics
import subprocess
import time
import uuid
from pathlib import Path

from .common import BenchError, KeepAlive, agg, dir_bytes, log, percentile, proc_status_kib
from .load import warm_up
from .setup import run_wrk, run_wrk_until, write_wrk_script
from .targets import Server

FILL_CONNS = 50
FILL_THREADS = 2


def counted_load(ctx: dict, srv: Server, story: str, n: int, name: str) -> dict:
    """POSTs `n` requests (a little more: wrk stops each thread after its share) at c=50."""
    lua = write_wrk_script(ctx["work"] / f"{name}.lua", ctx["payload"], math.ceil(n / FILL_THREADS))
    t = time.monotonic()
    base = srv.webhooks_accepted(story) or 0

    def done():
        v = srv.webhooks_accepted(story)
        return True if v is not None and v - base >= n else v
    w = run_wrk_until(ctx["wrk"], lua, srv.webhook_url(story), FILL_CONNS, FILL_THREADS, done, 3600)
    accepted = w["requests"] - w["errors"]["status"]
    if accepted < n * 0.99:
        raise BenchError(f"{name}: only {accepted} of {n} requests were accepted (wrk: {w['errors']}); "
                         f"serve log in {srv.log_path}")
    return {"accepted": accepted, "errors": sum(w["errors"].values()), "load_s": time.monotonic() - t,
            "p99_ms": w["latency_us"]["p99"] / 1000}


# --------------------------------------------------------------------------- pending delays

def measure_delays(ctx: dict) -> dict:
    """RSS before and after `--delays` runs each wait in a one-hour `delay`."""
    args = ctx["args"]
    srv = Server(ctx, "delays")
    out: dict = {"target": args.delays}
    try:
        url = srv.webhook_url("bench-delay")
        warm_up(url, ctx["payload"], args.warmup, 202)
        srv.wait_queue_empty(30)
        time.sleep(ctx["settle"])
        out["rss_before_kib"] = proc_status_kib(srv.pid, "VmRSS")
        t0 = time.monotonic()
        load = counted_load(ctx, srv, "bench-delay", args.delays, "delays")
        out.update(load)
        # Every run is waiting once the queue is empty and they all show as running.
        expected = load["accepted"] + args.warmup
        deadline = time.monotonic() + 600
        while True:
            running = (srv.run_counts("bench-delay") or {}).get("running")
            if srv.queued() == 0 and running is not None and running >= expected:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"delays: after 600 s only {running} of {expected} runs are waiting "
                                 f"(queued jobs: {srv.queued()}); serve log {srv.log_path}")
            time.sleep(0.5)
        out["stored_s"] = time.monotonic() - t0
        out["pending"] = running
        time.sleep(ctx["settle"])
        out["rss_after_kib"] = proc_status_kib(srv.pid, "VmRSS")
        out["peak_rss_kib"] = proc_status_kib(srv.pid, "VmHWM")
        out["added_kib"] = out["rss_after_kib"] - out["rss_before_kib"]
        out["held_in_memory"] = srv.metrics().get("switchyard_deferred_jobs_held")
        # A quiet moment later (what a server holds between bursts, not right after one).
        time.sleep(ctx["idle_after_burst"])
        out["idle_after_s"] = ctx["idle_after_burst"]
        out["rss_idle_kib"] = proc_status_kib(srv.pid, "VmRSS")
        out["added_idle_kib"] = out["rss_idle_kib"] - out["rss_before_kib"]
        out["store_bytes"] = dir_bytes(srv.data)
        srv.stop()
        # The same store in a fresh process: what the pending delays themselves cost, without
        # what the burst of the load left behind in the allocator.
        srv = Server(ctx, "delays-restarted", data=srv.data)
        time.sleep(ctx["settle"])
        out["rss_restarted_kib"] = proc_status_kib(srv.pid, "VmRSS")
        out["restart_s"] = srv.startup_s
        return out
    finally:
        srv.stop()
        if not args.keep:
            shutil.rmtree(srv.data, ignore_errors=True)


# --------------------------------------------------------------------------- history

def _timed(ka: KeepAlive, paths: list[str]) -> dict:
    ms = []
    for p in paths:
        code, body, secs = ka.get(p)
        if code != 200:
            raise BenchError(f"GET {p} answered {code}: {body[:300]!r}")
        ms.append(secs * 1000)
    return {"p50_ms": statistics.median(ms), "p99_ms": percentile(ms, 99), "max_ms": max(ms), "n": len(ms)}


def _cli_wall(srv: Server, argv: list[str], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = srv.cli(*argv)
        times.append((time.perf_counter() - t) * 1000)
        if r.returncode != 0:
            raise BenchError(f"`switchyard {' '.join(argv)}` failed (exit {r.returncode}): {r.stderr.strip()}")
    return statistics.median(times)


def _store_facts(data: Path, samples: int) -> dict:
    """Counts and a random sample of run ids, read from the stopped server's SQLite file."""
    con = sqlite3.connect(f"file:{data / 'switchyard.db'}?mode=ro", uri=True, timeout=30)
    try:
        events = con.execute("SELECT count(*) FROM events").fetchone()[0]
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
        ids = [str(uuid.UUID(bytes=r[0])) for r in
               con.execute("SELECT id FROM runs ORDER BY random() LIMIT ?", (samples,))]
        mid = con.execute("SELECT id FROM runs ORDER BY id LIMIT 1 OFFSET ?", (runs // 2,)).fetchone()
    finally:
        con.close()
    return {"events": events, "runs": runs, "sample_ids": ids,
            "mid_id": str(uuid.UUID(bytes=mid[0])) if mid else None, "store_bytes": dir_bytes(data)}


def _ingest_p99(ctx: dict, srv: Server, name: str) -> dict:
    args = ctx["args"]
    warm_up(srv.webhook_url("bench-ingest"), ctx["payload"], args.warmup, 202)
    w = run_wrk(ctx["wrk"], ctx["lua"], srv.webhook_url("bench-ingest"), 50, 2, args.duration)
    accepted = w["requests"] - w["errors"]["status"]
    return {"name": name, "accepted_per_s": accepted / (w["duration_us"] / 1e6),
            "p50_ms": w["latency_us"]["p50"] / 1000, "p99_ms": w["latency_us"]["p99"] / 1000,
            "errors": sum(w["errors"].values())}


def measure_history(ctx: dict) -> dict:
    """Fills a store with `--history-events` webhook events, then measures the run API on it
    and ingest p99 with and without retention pruning."""
    args = ctx["args"]
    data = ctx["work"] / "data-history"
    out: dict = {"target_events": args.history_events}
    fill_flags = ["--retention", "0"]
    if "--sqlite-sync" in ctx["serve_help"]:
        fill_flags.append("--sqlite-sync=normal")   # the fill's durability does not matter
    try:
        srv = Server(ctx, "history-fill", data=data, extra=fill_flags)
        try:
            log(f"    filling the store with {args.history_events:,} events (ingest story, c=50) ...")
            fill = counted_load(ctx, srv, "bench-ingest", args.history_events, "history-fill")
            srv.wait_queue_empty(120)
            out["fill"] = dict(fill, per_s=fill["accepted"] / fill["load_s"], flags=fill_flags)
        finally:
            srv.stop()
        out.update(_store_facts(data, args.history_samples))
        log(f"    {out['events']:,} events in {out['runs']:,} runs, {out['store_bytes'] / 2**20:,.0f} MiB; "
            "measuring the run API ...")

        srv = Server(ctx, "history", data=data, extra=["--retention", "0"])
        try:
            out["startup_s"] = srv.startup_s
            ka = KeepAlive(srv.url)
            n = args.history_samples
            code, body, _ = ka.get("/api/v1/runs?limit=50")
            if code != 200 or body.count(b'"id"') < 1:
                raise BenchError(f"GET /api/v1/runs answered {code}: {body[:300]!r}")
            lists = {
                "newest page": "/api/v1/runs?limit=50",
                "one story": "/api/v1/runs?story=bench-ingest&limit=50",
                "status failed (none)": "/api/v1/runs?status=failed&limit=50",
            }
            if out["mid_id"]:
                lists["page in the middle"] = f"/api/v1/runs?limit=50&before={out['mid_id']}"
            out["list"] = {k: _timed(ka, [p] * n) for k, p in lists.items()}
            ids = out["sample_ids"] or []
            out["show"] = _timed(ka, [f"/api/v1/runs/{ids[i % len(ids)]}" for i in range(n)]) if ids else None
            ka.close()
            cli_n = max(3, min(20, n // 10))
            out["cli_list_ms"] = _cli_wall(srv, ["runs", "list"], cli_n)
            if ids:
                out["cli_show_ms"] = _cli_wall(srv, ["runs", "show", ids[0]], cli_n)
            out["cli_version_ms"] = _wall([str(ctx["bins"][0]), "--version"], cli_n)
        finally:
            srv.stop()

        if "--retention" in ctx["serve_help"]:
            # Interleaved, --repeat times: ingest on this store without pruning, then while the
            # pruner deletes it (--retention 1s makes the whole history prunable).
            keep, prune, ratios = [], [], []
            for rep in range(1, args.repeat + 1):
                srv = Server(ctx, f"history-keep-{rep}", data=data, extra=["--retention", "0"])
                try:
                    keep.append(_ingest_p99(ctx, srv, "retention 0 (nothing pruned)"))
                finally:
                    srv.stop()
                srv = Server(ctx, f"history-prune-{rep}", data=data, extra=["--retention", "1s"])
                try:
                    before = _wait_pruning(srv)
                    res = _ingest_p99(ctx, srv, "retention 1s (pruning the history)")
                    res["pruned_runs_during_load"] = srv.metrics().get("switchyard_pruned_runs_total", 0) - before
                    prune.append(res)
                finally:
                    srv.stop()
                if keep[-1]["p99_ms"]:
                    ratios.append(prune[-1]["p99_ms"] / keep[-1]["p99_ms"])
            out["ingest_keep"], out["ingest_prune"] = _median_run(keep), _median_run(prune)
            out["ingest_keep_all"], out["ingest_prune_all"] = keep, prune
            out["prune_p99_ratio"] = agg(ratios)
        return out
    finally:
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)


def _median_run(runs: list[dict]) -> dict:
    """The figures of several loads as medians (with min-max for p99)."""
    out = dict(runs[0])
    for k in ("accepted_per_s", "p50_ms", "p99_ms", "errors", "pruned_runs_during_load"):
        vals = [r[k] for r in runs if r.get(k) is not None]
        out[k] = statistics.median(vals) if vals else None
    out["p99_ms_range"] = agg([r["p99_ms"] for r in runs])
    return out


def _wall(argv: list[str], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _wait_pruning(srv: Server) -> float:
    """Waits until the pruner has deleted something; returns its counter then."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        v = srv.metrics().get("switchyard_pruned_runs_total", 0)
        if v > 0:
            return v
        time.sleep(0.1)
    raise BenchError(f"serve --retention 1s pruned nothing within 30 s; serve log {srv.log_path}")
