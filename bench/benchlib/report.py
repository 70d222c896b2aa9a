"""Summaries and the printed tables."""

from __future__ import annotations

from .common import agg, fmt_num

SUMMARY_KEYS = ["accepted_per_s", "runs_per_s", "p50_ms", "p99_ms", "run_p50_ms", "run_p99_ms", "errors",
                "cpu_ms_per_unit", "peak_rss_kib", "idle_rss_kib", "drain_s", "backlog_at_load_end",
                "completed", "accepted", "writes_per_commit", "startup_s"]

# Side by side: (label, key, digits, scale); the ratio is Switchyard / Node-RED of the key.
VERSUS = [("runs/s", "runs_per_s", 0, 1.0), ("answer p50 ms", "p50_ms", 2, 1.0),
          ("answer p99 ms", "p99_ms", 2, 1.0), ("run p50 ms", "run_p50_ms", 2, 1.0),
          ("run p99 ms", "run_p99_ms", 2, 1.0), ("CPU ms/run", "cpu_ms_per_unit", 3, 1.0),
          ("peak RSS MiB", "peak_rss_kib", 1, 1 / 1024), ("idle RSS MiB", "idle_rss_kib", 1, 1 / 1024)]


def cell(a: dict | None, digits: int, scale: float = 1.0, suffix: str = "") -> str:
    if a is None:
        return "-"
    med = fmt_num(a["median"] * scale, digits) + suffix
    if a["n"] > 1:
        return f"{med} ({fmt_num(a['min'] * scale, digits)}-{fmt_num(a['max'] * scale, digits)})"
    return med


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def summarize(samples: list[dict]) -> dict:
    out = {k: agg([s.get(k) for s in samples]) for k in SUMMARY_KEYS}
    for who in ("engine", "sink", "wrk", "other", "iowait"):
        out[f"cpu_pct_{who}"] = agg([s["cpu_pct"][who] for s in samples])
    return out


def ratios(samples: list[dict], conns: list[int]) -> dict:
    """Switchyard e2e / Node-RED, pairwise by repeat (both measured back to back)."""
    out = {}
    for c in conns:
        sy = {s["repeat"]: s for s in samples if s["kind"] == "e2e" and s["connections"] == c}
        nr = {s["repeat"]: s for s in samples if s["kind"] == "node-red" and s["connections"] == c}
        per_key = {}
        for _, key, _, _ in VERSUS:
            vals = []
            for rep in sorted(set(sy) & set(nr)):
                a, b = sy[rep].get(key), nr[rep].get(key)
                if a is not None and b:
                    vals.append(a / b)
            per_key[key] = agg(vals)
        if sy and nr:
            out[f"c{c}"] = per_key
    return out


def scaled_ratios(samples: list[dict], workers: list[int]) -> dict:
    """Scaled out, N workers / the fewest workers, pairwise by repeat (measured back to
    back), for runs/s and CPU ms per run; keyed `w2/w1-c50`, `w2/w1-slow-c50`."""
    out = {}
    base = workers[0]
    conns = sorted({s["connections"] for s in samples})
    for n in workers[1:]:
        for slow in ("", "-slow"):
            for c in conns:
                def by_rep(k, c=c):
                    return {s["repeat"]: s for s in samples if s["kind"] == k and s["connections"] == c}
                a, b = by_rep(f"scaled-w{n}{slow}"), by_rep(f"scaled-w{base}{slow}")
                if not (a and b):
                    continue
                per_key = {}
                for key in ("runs_per_s", "cpu_ms_per_unit"):
                    vals = [a[r][key] / b[r][key] for r in sorted(set(a) & set(b))
                            if a[r].get(key) is not None and b[r].get(key)]
                    per_key[key] = agg(vals)
                out[f"w{n}/w{base}{slow}-c{c}"] = per_key
    return out


def _ingest_and_e2e(s: dict, conns: list[int]) -> list[str]:
    lines = []
    if any(k.startswith("ingest") for k in s):
        rows = []
        for c in conns:
            a = s.get(f"ingest-c{c}")
            if a:
                rows.append([f"c={c}", cell(a["accepted_per_s"], 0), cell(a["p50_ms"], 2), cell(a["p99_ms"], 2),
                             cell(a["errors"], 0), cell(a["cpu_ms_per_unit"], 3), cell(a["cpu_pct_engine"], 0),
                             cell(a["peak_rss_kib"], 1, 1 / 1024), cell(a["writes_per_commit"], 1)])
        lines += ["", "A) Webhook ingest (story with only a webhook)",
                  table(["load", "202/s", "p50 ms", "p99 ms", "errors", "CPU ms/req", "engine CPU %",
                         "peak RSS MiB", "writes/commit"], rows)]
    if any(k.startswith("e2e") for k in s):
        rows = []
        for c in conns:
            a = s.get(f"e2e-c{c}")
            if a:
                rows.append([f"c={c}", cell(a["runs_per_s"], 0), cell(a["accepted_per_s"], 0), cell(a["p50_ms"], 2),
                             cell(a["p99_ms"], 2), cell(a["run_p50_ms"], 2), cell(a["run_p99_ms"], 2),
                             cell(a["errors"], 0), cell(a["drain_s"], 2), cell(a["cpu_ms_per_unit"], 3),
                             cell(a["cpu_pct_engine"], 0), cell(a["peak_rss_kib"], 1, 1 / 1024),
                             cell(a["writes_per_commit"], 1)])
        lines += ["", "B) End to end: webhook -> transform -> http_request -> sink (runs/s = completed at the sink)",
                  table(["load", "runs/s", "202/s", "p50 ms", "p99 ms", "run p50 ms", "run p99 ms", "errors",
                         "drain s", "CPU ms/run", "engine CPU %", "peak RSS MiB", "writes/commit"], rows)]
    return lines


def _versus(results: dict, conns: list[int]) -> list[str]:
    s, r = results["summary"], results.get("ratios") or {}
    nr = results.get("node_red") or {}
    rows = []
    for c in conns:
        a, b = s.get(f"e2e-c{c}"), s.get(f"node-red-c{c}")
        if not (a and b):
            continue
        rows.append([f"c={c}", "switchyard"] + [cell(a[k], d, sc) for _, k, d, sc in VERSUS])
        rows.append(["", f"node-red {nr.get('version', '')}"] + [cell(b[k], d, sc) for _, k, d, sc in VERSUS])
        rr = r.get(f"c{c}", {})
        rows.append(["", "ratio SY/NR"] + [cell(rr.get(k), 2, 1.0, "x") for _, k, _, _ in VERSUS])
    if not rows:
        return []
    return ["", f"C) Side by side with Node-RED {nr.get('version', '')} (Node.js {nr.get('node_version', '?')}): "
            "same flow, payload, sink and load",
            table(["load", "system"] + [v[0] for v in VERSUS], rows),
            "answer = latency of the webhook's answer (Switchyard: 202 after the durable commit; Node-RED: "
            "200 after the sink answered).",
            "run = webhook received -> sink answered (Switchyard: run start -> run finish, from the store; "
            "Node-RED: the answer itself).",
            "ratio = Switchyard / Node-RED, per back-to-back pair: > 1 is better for runs/s, < 1 for the rest."]


def _memory(results: dict) -> list[str]:
    lines = ["", "D) Memory"]
    if results.get("idle_rss_kib"):
        lines.append(f"idle RSS after startup: {cell(results['idle_rss_kib'], 1, 1 / 1024)} MiB "
                     "(Switchyard, three stories loaded)")
    d = results.get("delays")
    if d:
        lines.append(f"{d['pending']:,} pending one-hour delays (stored in {d['stored_s']:.1f} s): RSS "
                     f"{d['rss_before_kib'] / 1024:.1f} -> {d['rss_after_kib'] / 1024:.1f} MiB, "
                     f"added {d['added_kib'] / 1024:+.1f} MiB (peak during the load {d['peak_rss_kib'] / 1024:.1f} MiB); "
                     f"held in memory: {fmt_num(d.get('held_in_memory'))}")
        if d.get("rss_idle_kib"):
            lines.append(f"  {d['idle_after_s']:g} s later, idle with the delays pending: RSS "
                         f"{d['rss_idle_kib'] / 1024:.1f} MiB, added {d['added_idle_kib'] / 1024:+.1f} MiB")
        if d.get("rss_restarted_kib"):
            lines.append(f"the same store in a fresh process (restarted in {d['restart_s']:.2f} s): RSS "
                         f"{d['rss_restarted_kib'] / 1024:.1f} MiB with the {d['pending']:,} delays pending")
    return lines if len(lines) > 2 else []


def _history(h: dict | None) -> list[str]:
    if not h:
        return []
    fill = h["fill"]
    lines = ["", f"E) History: {h['events']:,} stored events in {h['runs']:,} runs "
             f"({h['store_bytes'] / 2**20:,.0f} MiB on disk; filled at {fill['per_s']:,.0f} events/s "
             f"with {' '.join(fill['flags'])}); restart with it: {h['startup_s']:.2f} s"]
    rows = [[f"GET runs: {k}", fmt_num(v["p50_ms"], 2), fmt_num(v["p99_ms"], 2), str(v["n"])]
            for k, v in h["list"].items()]
    if h.get("show"):
        rows.append(["GET runs/ID (random runs)", fmt_num(h["show"]["p50_ms"], 2), fmt_num(h["show"]["p99_ms"], 2),
                     str(h["show"]["n"])])
    lines.append(table(["request (one kept-alive connection)", "p50 ms", "p99 ms", "n"], rows))
    lines.append(f"CLI wall time (process start to exit, median): `runs list` {fmt_num(h['cli_list_ms'], 1)} ms, "
                 f"`runs show ID` {fmt_num(h.get('cli_show_ms'), 1)} ms, `--version` "
                 f"{fmt_num(h['cli_version_ms'], 1)} ms")
    rows = []
    for key in ("ingest_keep", "ingest_prune"):
        v = h.get(key)
        if v:
            p99 = cell(v["p99_ms_range"], 2) if v.get("p99_ms_range") else fmt_num(v["p99_ms"], 2)
            rows.append([v["name"], fmt_num(v["accepted_per_s"]), fmt_num(v["p50_ms"], 2), p99,
                         fmt_num(v["errors"]), fmt_num(v.get("pruned_runs_during_load"))])
    if rows:
        lines += ["ingest at c=50 on this store:",
                  table(["serve", "202/s", "p50 ms", "p99 ms", "errors", "runs pruned during load"], rows)]
        if h.get("prune_p99_ratio"):
            lines.append(f"p99 while pruning / p99 without (per back-to-back pair): {cell(h['prune_p99_ratio'], 2)}x")
    return lines


def _cpu_share(s: dict, cpus: int) -> list[str]:
    rows = []
    for key, a in s.items():
        rows.append([key.replace("-c", " c="), cell(a["cpu_pct_engine"], 0), cell(a["cpu_pct_sink"], 0),
                     cell(a["cpu_pct_wrk"], 0), cell(a["cpu_pct_other"], 0), cell(a["cpu_pct_iowait"], 0)])
    if not rows:
        return []
    return ["", "F) CPU share",
            f"(100 % = one CPU busy; the machine has {cpus} CPUs; server = switchyard or node-red; "
            "other = the rest of the machine)",
            table(["measurement", "server %", "sink %", "wrk %", "other %", "iowait %"], rows)]


def _scaled(results: dict, conns: list[int]) -> list[str]:
    s, o = results["summary"], results["options"]
    if not any(k.startswith("scaled-") for k in s):
        if (results.get("skipped") or {}).get("scaled"):
            return ["", f"G) Scaled out: skipped ({results['skipped']['scaled']})"]
        return []
    rows = []

    def row(name: str, a: dict) -> list[str]:
        return [name, cell(a["runs_per_s"], 0), cell(a["accepted_per_s"], 0), cell(a["p50_ms"], 2),
                cell(a["p99_ms"], 2), cell(a["run_p50_ms"], 2), cell(a["run_p99_ms"], 2), cell(a["errors"], 0),
                cell(a["drain_s"], 2), cell(a["cpu_ms_per_unit"], 3), cell(a["cpu_pct_engine"], 0),
                cell(a["idle_rss_kib"], 1, 1 / 1024), cell(a["peak_rss_kib"], 1, 1 / 1024)]
    for slow in ("", "-slow"):
        for c in conns:
            if not slow and s.get(f"e2e-c{c}"):
                rows.append(row(f"c={c} embedded", s[f"e2e-c{c}"]))
            for n in o["workers"]:
                a = s.get(f"scaled-w{n}{slow}-c{c}")
                if a:
                    who = f"{n} worker{'s' if n > 1 else ''}"
                    rows.append(row(f"c={c} {who}" + (f", sink +{o['slow_sink_ms']} ms" if slow else ""), a))
    lines = ["", f"G) Scaled out, end to end: serve --no-workers + N workers over RabbitMQ and PostgreSQL "
             f"({o.get('scaled_services')} servers, on this machine)",
             table(["deployment", "runs/s", "202/s", "p50 ms", "p99 ms", "run p50 ms", "run p99 ms", "errors",
                    "drain s", "CPU ms/run", "engine CPU %", "idle RSS MiB", "peak RSS MiB"], rows),
             "CPU ms/run, engine CPU % and RSS add up every Switchyard process (serve and the workers); "
             "PostgreSQL and RabbitMQ count in 'other %' (F).",
             f"Workers run --concurrency {o['worker_concurrency']}; against the slow sink --concurrency "
             f"{o['slow_worker_concurrency']} and {o['slow_events']:,} webhooks per measurement, so a worker's "
             "agent executions are the limit and more workers should add throughput."]
    r = results.get("scaled_ratios") or {}
    if r:
        lines.append("ratio N workers / fewest, per back-to-back pair (runs/s: 2.00x = doubled; "
                     "CPU ms/run: 1.00x = flat):")
        lines.append(table(["workers", "runs/s", "CPU ms/run"],
                           [[k.replace("-slow", f", sink +{o['slow_sink_ms']} ms").replace("-c", " c="),
                             cell(v["runs_per_s"], 2, 1.0, "x"), cell(v["cpu_ms_per_unit"], 2, 1.0, "x")]
                            for k, v in r.items()]))
    return lines


def _paced(results: dict) -> list[str]:
    p = results.get("paced") or {}
    if not p:
        return []
    nr = results.get("node_red") or {}
    rows = []
    for kind, name in (("paced", "switchyard"), ("paced-node-red", f"node-red {nr.get('version', '')}")):
        a = p.get(kind)
        if a:
            rows.append([name, cell(a["sent_rate"], 0), cell(a["accepted"], 0), cell(a["sink_p50_ms"], 2), cell(a["sink_p90_ms"], 2),
                         cell(a["sink_p99_ms"], 2), cell(a["answer_p50_ms"], 2), cell(a["answer_p99_ms"], 2),
                         cell(a["cpu_ms_per_unit"], 3), cell(a["lost"], 0)])
    first = next(iter(p.values()))
    return ["", f"H) Webhook -> sink at a fixed rate: {first['rate']:g}/s, open loop, {first['requests']:,} requests",
            table(["system", "sent/s", "accepted", "to sink p50 ms", "p90 ms", "p99 ms", "answer p50 ms", "answer p99 ms",
                   "CPU ms/run", "lost"], rows),
            "to sink = scheduled send -> the transformed event arrives at the sink (the sink sends and receives, "
            "one clock); answer = scheduled send -> the webhook's answer; accepted = answered 202 (Switchyard) / 200 "
            "(Node-RED) within the drain time; lost = accepted but never arrived."]


def _notes(results: dict) -> list[str]:
    notes = []
    expected = 0
    for smp in results["samples"]:
        tag = f"{smp['kind']} c={smp['connections']} #{smp['repeat']}"
        if smp.get("incomplete"):
            notes.append(f"{tag}: only {smp['completed']} of {smp['accepted']} accepted runs reached the sink "
                         f"({smp.get('failed_runs')} failed, {smp.get('running_runs')} still running)")
        elif smp.get("failed_runs"):
            notes.append(f"{tag}: {smp['failed_runs']} failed runs")
        if smp.get("running_runs"):
            notes.append(f"{tag}: {smp['running_runs']} runs still 'running' after the sink went quiet "
                         "(requests in flight when wrk closed its connections)")
        if smp["errors"]:
            notes.append(f"{tag}: wrk errors {smp['wrk']['errors']} (status = HTTP >= 400)")
        lg = smp.get("log") or {}
        expected += lg.get("expected_warn_lines") or 0
        if lg.get("error_lines") or lg.get("warn_lines"):
            notes.append(f"{tag}: log has {lg['error_lines']} ERROR and {lg['warn_lines']} WARN lines, e.g.")
            notes += [f"    {x}" for x in lg["samples"][:3]]
    lines = ["", "Notes:"] + [f"  {n}" for n in notes] if notes else []
    if expected:
        lines += ["", f"({expected} start-up WARN lines every fresh benchmark server prints by design - a generated "
                  "master key, the API open without tokens, --allow-private-networks - are not counted.)"]
    return lines


def report(results: dict) -> str:
    s = results["summary"]
    conns = results["options"]["connections"]
    m = results["machine"]
    g = results["git"]
    lines = [
        "",
        f"Switchyard bench - {m['cpus']} CPUs ({m['cpu_model']}), {results['options']['duration']:g} s per run "
        f"x {results['options']['repeat']}, "
        + (f"commit {g['commit'][:10]}{' (dirty)' if g['dirty'] else ''}" if g["commit"] else "not a git checkout")
        + f", load average before {m['loadavg_before']}, after {results.get('loadavg_after')}",
        "Load generator, servers and sink share the same CPUs: see bench/README.md.",
        "Cells: median, or median (min-max) with --repeat.",
    ]
    # (scaled out, PostgreSQL and RabbitMQ are 'other' by design)
    busy = max((a["cpu_pct_other"]["max"] for k, a in s.items() if a["cpu_pct_other"] and not k.startswith("scaled-")),
               default=0.0)
    if busy > 30:
        lines.append(f"WARNING: the rest of the machine used up to {busy:.0f} % CPU during the measurements; "
                     "if that was foreign load, the figures are disturbed (see 'other %' in F).")
    lines += _ingest_and_e2e(s, conns)
    lines += _versus(results, conns)
    lines += _memory(results)
    lines += _history(results.get("history"))
    lines += _cpu_share(s, m["cpus"])
    lines += _scaled(results, conns)
    lines += _paced(results)
    lines += _notes(results)
    return "\n".join(lines)
