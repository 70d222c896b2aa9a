"""The systems under test: a fresh `switchyard serve`, a fresh Node-RED; their stories and flow."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from .common import (PROCS, BenchError, dir_bytes, free_port, http, percentile, proc_cpu_secs, proc_status_kib,
                     strip_ansi, tail, wait_http)

# WARN lines `serve` (and `worker`) print at every benchmark start by design: a fresh data
# directory generates a master key, no API token exists yet, and the SSRF guard is off so that
# http_request may reach the sink on loopback. Not problems: the notes count them apart.
EXPECTED_WARNINGS = ("GENERATED A NEW MASTER KEY", "THE API IS OPEN", "--allow-private-networks:")

INGEST_STORY = """\
# Benchmark: a webhook and nothing else, so ingest is measured alone.
name: bench-ingest
description: "Benchmark: webhook ingest only"
agents:
  - name: inbound
    type: webhook
    path: ingest
    auth: none
"""

E2E_STORY = """\
# Benchmark: webhook -> transform -> http_request to the local sink.
name: bench-e2e
description: "Benchmark: webhook, transform, http_request to a local sink"
agents:
  - name: inbound
    type: webhook
    path: ingest
    auth: none
  - name: shape
    type: transform
    from: inbound
    mode: message
    payload: '{{ inbound.body | merge({"seen": true, "at": now}) }}'
  - name: deliver
    type: http_request
    from: shape
    url: "__SINK_URL__/ingest"
    method: POST
    body: "{{ shape }}"
"""

DELAY_STORY = """\
# Benchmark: every event waits an hour (a deferred job in the store) - memory per pending delay.
name: bench-delay
description: "Benchmark: webhook, then a one-hour delay"
agents:
  - name: inbound
    type: webhook
    path: ingest
    auth: none
  - name: later
    type: delay
    from: inbound
    for: 1h
"""


def write_stories(stories: Path, sink_ref: str) -> None:
    stories.mkdir(parents=True, exist_ok=True)
    (stories / "bench-ingest.yaml").write_text(INGEST_STORY)
    (stories / "bench-e2e.yaml").write_text(E2E_STORY.replace("__SINK_URL__", sink_ref))
    (stories / "bench-delay.yaml").write_text(DELAY_STORY)


class Server:
    """A `switchyard serve` on its own port; a fresh data directory unless `data` is given."""

    system = "switchyard"
    ok_status = 202

    def __init__(self, ctx: dict, label: str, data: Path | None = None, extra: list[str] | None = None):
        args, work = ctx["args"], ctx["work"]
        self.bin = ctx["bins"][0]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = data or work / f"data-{label}"
        self.log_path = work / f"serve-{label}.log"
        argv = [str(self.bin), "serve", "--stories", str(ctx["stories"]), "--packs", str(work / "packs"),
                "--data", str(self.data), "--listen", f"127.0.0.1:{self.port}", *ctx["serve_flags"],
                *args.serve_arg, *(extra or [])]
        env = dict(os.environ, NO_COLOR="1")
        self.logf = open(self.log_path, "wb")  # pylint: disable=consider-using-with
        t = time.monotonic()
        self.proc = PROCS.start("switchyard", argv, stdout=self.logf, stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid
        wait_http(f"{self.url}/healthz", lambda s: s == 200, 120, self.proc, "switchyard serve", self.log_path)
        self.startup_s = time.monotonic() - t

    def webhook_url(self, story: str) -> str:
        return f"{self.url}/webhook/{story}/ingest"

    def cli(self, *a: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin), *a, "--url", self.url], capture_output=True, text=True, check=False)

    def queued(self) -> int | None:
        try:
            code, body = http("GET", f"{self.url}/readyz", timeout=5.0)
            return int(json.loads(body).get("queued_jobs")) if code == 200 else None
        except (OSError, ValueError, TypeError):
            return None

    def wait_queue_empty(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.queued() == 0:
                return True
            time.sleep(0.05)
        return False

    def metrics(self) -> dict[str, float]:
        """The Prometheus gauges and counters of /metrics (no labels), {} if unavailable."""
        try:
            code, body = http("GET", f"{self.url}/metrics", timeout=5.0)
        except OSError:
            return {}
        if code != 200:
            return {}
        out = {}
        for line in body.decode(errors="replace").splitlines():
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*) ([-+0-9.eE]+|NaN)$", line)
            if m:
                out[m.group(1)] = float(m.group(2))
        return out

    def webhooks_accepted(self, story: str) -> int | None:
        """`switchyard_webhooks_total{story=STORY,status="202"}` from /metrics."""
        try:
            code, body = http("GET", f"{self.url}/metrics", timeout=5.0)
        except OSError:
            return None
        if code != 200:
            return None
        want = f'switchyard_webhooks_total{{story="{story}",status="202"}} '
        for line in body.decode(errors="replace").splitlines():
            if line.startswith(want):
                return int(float(line[len(want):]))
        return 0

    def run_counts(self, story: str) -> dict[str, int] | None:
        """Runs of `story` started in the last hour, by status (GET /api/v1/runs/stats)."""
        try:
            code, body = http("GET", f"{self.url}/api/v1/runs/stats", timeout=30.0)
            return json.loads(body)["stories"][story]["hour"] if code == 200 else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def pids(self) -> list[int]:
        return [self.pid]

    def cpu_secs(self) -> float:
        return proc_cpu_secs(self.pid)

    def rss_kib(self, key: str) -> int:
        return proc_status_kib(self.pid, key)

    def log_paths(self) -> list[Path]:
        return [self.log_path]

    def log_tail(self) -> str:
        return tail(self.log_path)

    def check_alive(self) -> None:
        """Raises if a process of the system under test has exited (the serve process is
        checked through its HTTP answers)."""

    def log_problems(self) -> dict:
        """ERROR and WARN lines of the logs, but for the warnings every benchmark start-up
        gives by design (counted apart as `expected_warn_lines`)."""
        counts = {"ERROR": 0, "WARN": 0, "expected": 0}
        samples: list[str] = []
        try:
            text = "\n".join(p.read_text(errors="replace") for p in self.log_paths())
        except OSError:
            return {"error_lines": None, "warn_lines": None, "samples": []}
        for line in text.splitlines():
            line = strip_ansi(line)
            m = re.search(r"\b(ERROR|WARN)\b", line)
            if not m:
                continue
            if m.group(1) == "WARN" and any(x in line for x in EXPECTED_WARNINGS):
                counts["expected"] += 1
                continue
            counts[m.group(1)] += 1
            if len(samples) < 5:
                samples.append(line.strip()[:300])
        return {"error_lines": counts["ERROR"], "warn_lines": counts["WARN"],
                "expected_warn_lines": counts["expected"], "log_bytes": len(text), "samples": samples}

    def run_latencies_ms(self, story: str, since_wall: float) -> list[float] | None:
        """Webhook-to-finish times (ms) of the runs of `story` started after `since_wall`,
        read from the store after the server stopped (SQLite, read-only)."""
        db = self.data / "switchyard.db"
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
            try:
                rows = con.execute(
                    "SELECT finished_at - started_at FROM runs WHERE story = ? AND started_at >= ? "
                    "AND finished_at IS NOT NULL", (story, int(since_wall * 1e6))).fetchall()
            finally:
                con.close()
        except sqlite3.Error:
            return None
        return [r[0] / 1000 for r in rows]

    def store_bytes(self) -> int | None:
        return dir_bytes(self.data)

    def stop(self) -> float:
        took = PROCS.stop(self.proc)
        self.logf.close()
        return took

    def cleanup(self) -> None:
        """Removes what the measurement stored (after stop)."""
        shutil.rmtree(self.data, ignore_errors=True)


# --------------------------------------------------------------------------- Node-RED

NODE_RED_SETTINGS = """\
// bench/run: Node-RED as a lean server for the benchmark flow. The editor and the admin
// API are off (httpAdminRoot: false), so only the flow's own HTTP endpoint is served.
module.exports = {
  uiHost: "127.0.0.1",
  uiPort: __PORT__,
  flowFile: "flows.json",
  credentialSecret: false,
  httpAdminRoot: false,
  httpNodeRoot: "/",
  logging: { console: { level: "warn", metrics: false, audit: false } },
  externalModules: { autoInstall: false },
  telemetry: { enabled: false },
  diagnostics: { enabled: false },
};
"""


def node_red_flow(sink_url: str) -> list[dict]:
    """The e2e story as a Node-RED flow: http in (POST) -> change (two fields) ->
    http request (POST to the sink, keep-alive) -> http response (answers the client)."""
    z = "bench-tab"
    return [
        {"id": z, "type": "tab", "label": "bench-e2e"},
        {"id": "bench-in", "type": "http in", "z": z, "name": "inbound", "url": "/webhook/bench-e2e/ingest",
         "method": "post", "upload": False, "swaggerDoc": "", "wires": [["bench-shape"]]},
        {"id": "bench-shape", "type": "change", "z": z, "name": "shape",
         "rules": [{"t": "set", "p": "payload.seen", "pt": "msg", "to": "true", "tot": "bool"},
                   {"t": "set", "p": "payload.at", "pt": "msg", "to": "iso", "tot": "date"}],
         "wires": [["bench-deliver"]]},
        {"id": "bench-deliver", "type": "http request", "z": z, "name": "deliver", "method": "POST",
         "ret": "txt", "paytoqs": "ignore", "url": f"{sink_url}/ingest", "tls": "", "persist": True,
         "proxy": "", "insecureHTTPParser": False, "authType": "", "senderr": False, "headers": [],
         "wires": [["bench-answer"]]},
        {"id": "bench-answer", "type": "http response", "z": z, "name": "answer", "statusCode": "",
         "headers": {}, "wires": []},
    ]


class NodeRed:
    """A fresh Node-RED (private userDir, settings and flow) on its own port."""

    system = "node-red"
    ok_status = 200

    def __init__(self, ctx: dict, label: str):
        nr = ctx["node_red"]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.user_dir = ctx["work"] / f"node-red-{label}"
        self.user_dir.mkdir()
        (self.user_dir / "settings.js").write_text(NODE_RED_SETTINGS.replace("__PORT__", str(self.port)))
        (self.user_dir / "flows.json").write_text(json.dumps(node_red_flow(ctx["sink_url"]), indent=1))
        self.log_path = ctx["work"] / f"node-red-{label}.log"
        self.logf = open(self.log_path, "wb")  # pylint: disable=consider-using-with
        argv = [nr["node"], str(nr["red_js"]), "--settings", str(self.user_dir / "settings.js"),
                "--userDir", str(self.user_dir)]
        env = dict(os.environ, NODE_ENV="production")
        t = time.monotonic()
        self.proc = PROCS.start("node-red", argv, stdout=self.logf, stderr=subprocess.STDOUT, env=env,
                                cwd=self.user_dir)
        self.pid = self.proc.pid
        # Started once the flow answers: POST until 200 (these requests reach the sink before
        # the measurement starts counting).
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"node-red exited with {self.proc.returncode}; its log:\n{tail(self.log_path)}")
            try:
                if http("POST", self.webhook_url(""), ctx["payload"], timeout=2.0)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"node-red's flow did not answer within 120 s; its log:\n{tail(self.log_path)}")
            time.sleep(0.1)
        self.startup_s = time.monotonic() - t

    def webhook_url(self, _story: str) -> str:
        return f"{self.url}/webhook/bench-e2e/ingest"

    def log_problems(self) -> dict:
        try:
            lines = [strip_ansi(x) for x in self.log_path.read_text(errors="replace").splitlines()]
        except OSError:
            return {"error_lines": None, "warn_lines": None, "samples": []}
        errors = [x for x in lines if "[error]" in x]
        return {"error_lines": len(errors), "warn_lines": 0, "samples": [x[:300] for x in errors[:5]]}

    def pids(self) -> list[int]:
        return [self.pid]

    def cpu_secs(self) -> float:
        return proc_cpu_secs(self.pid)

    def rss_kib(self, key: str) -> int:
        return proc_status_kib(self.pid, key)

    def log_tail(self) -> str:
        return tail(self.log_path)

    def check_alive(self) -> None:
        """Node-RED's one process is checked through its HTTP answers."""

    def stop(self) -> float:
        took = PROCS.stop(self.proc)
        self.logf.close()
        return took

    def cleanup(self) -> None:
        shutil.rmtree(self.user_dir, ignore_errors=True)


def latency_summary(ms: list[float] | None) -> dict:
    if not ms:
        return {"run_p50_ms": None, "run_p99_ms": None, "run_latency_n": 0}
    return {"run_p50_ms": percentile(ms, 50), "run_p99_ms": percentile(ms, 99), "run_latency_n": len(ms)}
