"""One load measurement: a fresh server, warm-up, wrk, then CPU, memory and completions."""

from __future__ import annotations

import math
import time

from .common import BenchError, children_cpu_secs, http, proc_cpu_secs, self_cpu_secs, system_cpu_secs
from .profile import start_perf, stop_perf
from .scaled import Deployment, kind_workers
from .setup import run_wrk, run_wrk_until, sink_count, write_wrk_script
from .targets import NodeRed, Server, latency_summary

STALL_SECS = 5.0          # end to end: the sink saw nothing for this long -> the rest is lost/stuck

STORY = {"ingest": "bench-ingest", "e2e": "bench-e2e", "node-red": "bench-e2e"}


def story_of(kind: str) -> str:
    return STORY.get(kind, "bench-e2e")   # scaled-*: the e2e story


def warm_up(url: str, payload: bytes, n: int, ok: int) -> None:
    for i in range(n):
        code, body = http("POST", url, payload, timeout=10.0)
        if code != ok:
            raise BenchError(f"warm-up request {i + 1}: {url} answered {code}: {body[:300]!r}")


def wait_sink(sink: str, before: int, n: int, seconds: float, srv) -> None:
    deadline = time.monotonic() + seconds
    while sink_count(sink)[0] - before < n:
        srv.check_alive()
        if time.monotonic() > deadline:
            got = sink_count(sink)[0] - before
            failed = srv.run_counts("bench-e2e") if isinstance(srv, Server) else None
            raise BenchError(
                f"end-to-end pipeline broken: {got} of {n} warm-up runs reached the sink within "
                f"{seconds:g} s (run counts {failed}); log:\n{srv.log_tail()}")
        time.sleep(0.02)


def start_target(ctx: dict, kind: str, label: str):
    """The system under test of a load kind, and the sink (URL, process) it delivers to."""
    args = ctx["args"]
    slow = kind.endswith("-slow")
    sink_url, sink_proc = (ctx["slow_sink_url"], ctx["slow_sink_proc"]) if slow else (ctx["sink_url"], ctx["sink_proc"])
    if kind == "node-red":
        srv = NodeRed(ctx, label)
    elif kind_workers(kind):
        conc = args.slow_worker_concurrency if slow else args.worker_concurrency
        srv = Deployment(ctx, label, kind_workers(kind), conc, sink_url)
    else:
        srv = Server(ctx, label)
    return srv, sink_url, sink_proc


def counted_wrk(ctx: dict, srv: Server, url: str, story: str, conns: int, threads: int, n: int) -> dict:
    """wrk until `n` webhooks were accepted (each thread stops after its share)."""
    lua = write_wrk_script(ctx["work"] / f"counted-{n}-{threads}.lua", ctx["payload"], math.ceil(n / threads))
    base = srv.webhooks_accepted(story) or 0

    def done():
        v = srv.webhooks_accepted(story)
        return True if v is not None and v - base >= n else v
    return run_wrk_until(ctx["wrk"], lua, url, conns, threads, done, ctx["args"].max_drain)


def measure(ctx: dict, kind: str, conns: int, rep: int) -> dict:
    """kind: `ingest` or `e2e` (Switchyard) or `node-red` (the same flow in Node-RED), or
    `scaled-wN` (serve --no-workers + N workers, the e2e flow), `scaled-wN-slow` (the same
    against the slow sink, with a fixed number of events: --slow-events)."""
    args = ctx["args"]
    label = f"{kind}-c{conns}-{rep}"
    srv, sink, sink_proc = start_target(ctx, kind, label)
    workers = kind_workers(kind)
    result: dict = {"kind": kind, "system": srv.system, "connections": conns, "repeat": rep,
                    "startup_s": srv.startup_s, "workers": workers}
    to_sink = kind != "ingest"
    t0_wall = None
    try:
        time.sleep(ctx["settle"])
        result["idle_rss_kib"] = srv.rss_kib("VmRSS")
        story = story_of(kind)
        url = srv.webhook_url(story)

        if kind == "e2e" and not args.literal_url:
            r = srv.cli("resource", "set", "sink_url", sink)
            if r.returncode != 0:
                raise BenchError("`switchyard resource set sink_url ...` failed "
                                 f"(exit {r.returncode}): {r.stderr.strip()}\n(try --literal-url)")

        # Warm up, and check that the pipeline works before measuring it.
        before, _ = sink_count(sink)
        warm_up(url, ctx["payload"], args.warmup, srv.ok_status)
        if to_sink:
            wait_sink(sink, before, args.warmup, 30, srv)
        else:
            srv.wait_queue_empty(30)

        threads = args.wrk_threads or (1 if conns == 1 else 2)
        m0 = srv.metrics() if isinstance(srv, Server) else {}
        sink0, _ = sink_count(sink)
        hooks0 = srv.webhooks_accepted(story) if to_sink and isinstance(srv, Server) else None
        wrk_cpu0 = children_cpu_secs()
        sink_cpu0 = proc_cpu_secs(sink_proc.pid)
        cpu0 = srv.cpu_secs()
        sys0 = system_cpu_secs()
        self0 = self_cpu_secs()
        t0 = time.monotonic()
        t0_wall = time.time()
        perf = start_perf(ctx, srv.pid, label) if args.perf and srv.system == "switchyard" else None
        try:
            if kind.endswith("-slow"):
                w = counted_wrk(ctx, srv, url, story, conns, threads, args.slow_events)
            else:
                w = run_wrk(ctx["wrk"], ctx["lua"], url, conns, threads, args.duration)
        finally:
            if perf:
                result["perf"] = stop_perf(ctx, perf)
        t_load_end = time.monotonic()
        wrk_cpu = children_cpu_secs() - wrk_cpu0
        accepted = w["requests"] - w["errors"]["status"]
        expected = accepted
        result["backlog_at_load_end"] = srv.queued() if isinstance(srv, Server) else 0

        if to_sink:
            deadline = t_load_end + args.max_drain
            while True:
                srv.check_alive()
                # wrk does not count the requests in flight when it stops (up to one per
                # connection; more when interrupted after a counted load): Switchyard's own
                # count of 202s says how many runs to wait for.
                hooks = srv.webhooks_accepted(story) if hooks0 is not None else None
                if hooks is not None:
                    result["accepted_by_server"] = hooks - hooks0
                    expected = max(accepted, hooks - hooks0)
                now = time.monotonic()
                count, idle_ms = sink_count(sink)
                done = count - sink0
                idle = (idle_ms or 0.0) / 1000.0
                # All accepted runs are in (plus the few wrk had in flight when it stopped),
                # or nothing arrived for a while, or we gave up.
                if (done >= expected and idle >= 0.3) or idle >= STALL_SECS or now > deadline:
                    break
                time.sleep(0.05)
            t_last = now - idle if idle_ms is not None else now
            elapsed = max(t_last - t0, 1e-9)
            result["completed"] = done
            result["runs_per_s"] = done / elapsed
            result["e2e_elapsed_s"] = elapsed
            result["drain_s"] = max(t_last - t_load_end, 0.0)
            result["incomplete"] = done < expected
            t_end = now
        else:
            srv.wait_queue_empty(30)
            t_end = time.monotonic()

        cpu = srv.cpu_secs() - cpu0
        sys1 = system_cpu_secs()
        sys_busy, sys_iowait = sys1[0] - sys0[0], sys1[1] - sys0[1]
        own = self_cpu_secs() - self0
        sink_cpu = proc_cpu_secs(sink_proc.pid) - sink_cpu0
        # CPU shares over the whole measurement (end to end: including the 0.3 s of quiet
        # that confirms the last completion)
        wall = t_end - t0
        work_units = result["completed"] if to_sink else accepted
        result.update({
            "accepted": accepted,
            "accepted_per_s": accepted / (w["duration_us"] / 1e6),
            "wrk": w,
            "p50_ms": w["latency_us"]["p50"] / 1000,
            "p99_ms": w["latency_us"]["p99"] / 1000,
            "errors": sum(w["errors"].values()),
            "cpu_s": cpu,
            "cpu_ms_per_unit": cpu * 1000 / work_units if work_units else None,
            "wall_s": wall,
            "cpu_pct": {"engine": 100 * cpu / wall, "sink": 100 * sink_cpu / wall,
                        "wrk": 100 * wrk_cpu / wall,
                        # the rest of the machine: other processes, kernel threads (the disk
                        # journal...); and below, time the CPUs sat idle waiting on the disk
                        "other": max(0.0, 100 * (sys_busy - cpu - sink_cpu - wrk_cpu - own) / wall),
                        "iowait": 100 * sys_iowait / wall},
            # all processes of the system added up (scaled out: serve and every worker)
            "peak_rss_kib": srv.rss_kib("VmHWM"),
            "rss_end_kib": srv.rss_kib("VmRSS"),
        })
        if isinstance(srv, Server):
            m1 = srv.metrics()
            commits = m1.get("switchyard_store_commits", 0) - m0.get("switchyard_store_commits", 0)
            writes = m1.get("switchyard_store_writes", 0) - m0.get("switchyard_store_writes", 0)
            result["store_commits"] = commits
            result["writes_per_commit"] = writes / commits if commits > 0 else None
            if to_sink:
                counts = srv.run_counts(story) or {}
                result["failed_runs"] = counts.get("failed")
                result["running_runs"] = counts.get("running")
            result["store_bytes"] = srv.store_bytes()
        else:
            # Node-RED answers after the sink answered: its latency is the run's latency.
            result["run_p50_ms"], result["run_p99_ms"] = result["p50_ms"], result["p99_ms"]
        result["log"] = srv.log_problems()
        return result
    finally:
        result["stop_s"] = srv.stop()
        if to_sink and isinstance(srv, Server) and t0_wall is not None:
            result.update(latency_summary(srv.run_latencies_ms(story_of(kind), t0_wall)))
        if not args.keep:
            srv.cleanup()
