"""Webhook to sink at a fixed rate (open loop): the latency a user sees at a given load.

wrk's closed loop (each connection sends its next request when the last was answered)
measures capacity; this measures latency at a rate below capacity, the issue's
"webhook-to-sink p50 at 1,000 runs/s". The sink itself drives the load (`POST /drive`, see
bench/sink/src/drive.rs): it sends the i-th request at start + i / rate whatever the answers,
stamps it with a sequence number that the flow passes on, and times each from its scheduled
send to its arrival back at the sink, so a late system cannot hide its lateness.
"""

from __future__ import annotations

import json
import time

from .common import BenchError, agg, http, proc_cpu_secs
from .load import start_target, wait_sink, warm_up
from .setup import sink_count
from .targets import Server

KINDS = {"paced": "switchyard", "paced-node-red": "node-red"}


def drive(sink_url: str, url: str, rate: float, seconds: float, body: dict, drain: float) -> dict:
    payload = json.dumps({"url": url, "rate": rate, "seconds": seconds, "body": body,
                          "drain_seconds": drain}).encode()
    status, answer = http("POST", f"{sink_url}/drive", payload, timeout=seconds + drain + 60)
    if status != 200:
        raise BenchError(f"the sink refused the drive ({status}): {answer[:300]!r}")
    return json.loads(answer)


def measure_paced(ctx: dict, kind: str, rep: int) -> dict:
    """One fixed-rate measurement of `kind` (paced: Switchyard's e2e story; paced-node-red:
    the same flow in Node-RED) on a fresh server."""
    args = ctx["args"]
    target = "e2e" if kind == "paced" else "node-red"
    label = f"{kind}-{rep}"
    srv, sink, sink_proc = start_target(ctx, target, label)
    result: dict = {"kind": kind, "system": KINDS[kind], "repeat": rep, "rate": args.paced_rate,
                    "seconds": args.duration}
    try:
        time.sleep(ctx["settle"])
        url = srv.webhook_url("bench-e2e")
        if isinstance(srv, Server) and not args.literal_url:
            r = srv.cli("resource", "set", "sink_url", sink)
            if r.returncode != 0:
                raise BenchError(f"`switchyard resource set sink_url ...` failed (exit {r.returncode}): "
                                 f"{r.stderr.strip()}")
        before, _ = sink_count(sink)
        warm_up(url, ctx["payload"], args.warmup, srv.ok_status)
        wait_sink(sink, before, args.warmup, 30, srv)

        cpu0, sink_cpu0 = srv.cpu_secs(), proc_cpu_secs(sink_proc.pid)
        got = drive(sink, url, args.paced_rate, args.duration, json.loads(ctx["payload"]), args.max_drain)
        srv.check_alive()
        cpu = srv.cpu_secs() - cpu0
        arrived = got["arrived"]
        ok = sum(v for k, v in got["statuses"].items() if k == str(srv.ok_status))
        result.update({
            "drive": got,
            "requests": got["requests"],
            "accepted": ok,
            "arrived": arrived,
            "lost": ok - arrived,
            "sent_rate": got["requests"] / max(got["sent_in_s"], 1e-9),
            "sink_p50_ms": (got["sink_ms"] or {}).get("p50"),
            "sink_p90_ms": (got["sink_ms"] or {}).get("p90"),
            "sink_p99_ms": (got["sink_ms"] or {}).get("p99"),
            "answer_p50_ms": (got["answer_ms"] or {}).get("p50"),
            "answer_p99_ms": (got["answer_ms"] or {}).get("p99"),
            "cpu_ms_per_unit": cpu * 1000 / arrived if arrived else None,
            "sink_cpu_pct": 100 * (proc_cpu_secs(sink_proc.pid) - sink_cpu0) / max(got["sent_in_s"], 1e-9),
            "peak_rss_kib": srv.rss_kib("VmHWM"),
        })
        if isinstance(srv, Server):
            counts = srv.run_counts("bench-e2e") or {}
            result["failed_runs"] = counts.get("failed")
        return result
    finally:
        result["stop_s"] = srv.stop()
        if not args.keep:
            srv.cleanup()


PACED_KEYS = ["accepted", "sink_p50_ms", "sink_p90_ms", "sink_p99_ms", "answer_p50_ms", "answer_p99_ms", "cpu_ms_per_unit",
              "sent_rate", "lost", "peak_rss_kib"]


def summarize_paced(samples: list[dict]) -> dict:
    out = {}
    for kind in KINDS:
        got = [s for s in samples if s["kind"] == kind]
        if got:
            out[kind] = {k: agg([s.get(k) for s in got]) for k in PACED_KEYS}
            out[kind]["requests"] = got[0]["requests"]
            out[kind]["rate"] = got[0]["rate"]
    return out


def log_paced(smp: dict) -> str:
    return (f"    {smp['system']}: {smp['arrived']:,}/{smp['requests']:,} at the sink, sent at "
            f"{smp['sent_rate']:,.0f}/s; webhook->sink p50 {smp['sink_p50_ms'] or 0:.2f} ms, "
            f"p99 {smp['sink_p99_ms'] or 0:.2f} ms; answer p50 {smp['answer_p50_ms'] or 0:.2f} ms; "
            f"CPU {smp['cpu_ms_per_unit'] or 0:.3f} ms/run; statuses {smp['drive']['statuses']}")
