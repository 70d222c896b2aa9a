"""Getting what the benchmark needs: wrk, the binaries, the sink, Node-RED."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .common import CACHE, PROCS, REPO, BenchError, http, log

WRK_SUMMARY = """\
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%.0f,"p90":%.0f,"p99":%.0f,"p999":%.0f,"max":%.0f,"mean":%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""

WRK_POST = """\
-- POST a fixed JSON body; print the summary as one JSON line for bench/run.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[__BODY__]==]
"""

WRK_COUNTED = """\
-- Each thread stops after __LIMIT__ responses: a load of a fixed number of requests.
local limit = __LIMIT__
local n = 0
function response(status, headers, body)
  n = n + 1
  if n >= limit then wrk.thread:stop() end
end
"""

# The newest Node-RED that runs on Node.js 20 (5.x needs Node.js >= 22.9). See bench/README.md.
NODE_RED_VERSION = "4.1.15"


def write_wrk_script(path: Path, payload: bytes, per_thread_limit: int | None = None) -> Path:
    text = WRK_POST.replace("__BODY__", payload.decode())
    if per_thread_limit is not None:
        text += WRK_COUNTED.replace("__LIMIT__", str(per_thread_limit))
    path.write_text(text + WRK_SUMMARY)
    return path


def run_wrk(wrk: str, lua: Path, url: str, conns: int, threads: int, duration: float) -> dict:
    """Runs wrk; returns its summary (requests, errors, latency percentiles in µs)."""
    argv = [wrk, f"-t{threads}", f"-c{conns}", f"-d{duration:g}s", "--timeout", "10s", "-s", str(lua), url]
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    for line in r.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise BenchError(f"wrk failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")


def run_wrk_until(wrk: str, lua: Path, url: str, conns: int, threads: int, done, limit_s: float) -> dict:
    """Runs wrk (a script that stops each thread after its share of requests) until
    `done()` says enough, nothing moves any more, or `limit_s` passes; then interrupts it
    (wrk prints its summary on SIGINT: it would otherwise sit out its whole duration)."""
    argv = [wrk, f"-t{threads}", f"-c{conns}", f"-d{int(limit_s) + 60}s", "--timeout", "10s", "-s", str(lua), url]
    p = PROCS.start("wrk", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + limit_s
    last, still_since = None, time.monotonic()
    try:
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            v = done()
            if v is True:
                break
            if v != last:
                last, still_since = v, time.monotonic()
            elif time.monotonic() - still_since > 10:
                break
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        PROCS.stop(p)
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise BenchError(f"wrk failed (exit {p.returncode}):\n{out}\n{err}")


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if not shutil.which("apt-get"):
        raise BenchError("wrk is not installed and apt-get is not available: install wrk (https://github.com/wg/wrk)")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            raise BenchError("wrk is not installed: run `apt-get install -y wrk` as root")
        prefix = ["sudo", "-n"]
    log("installing wrk (apt-get) ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        r = subprocess.run(prefix + argv, env=env, check=False, stdout=subprocess.DEVNULL)
        if r.returncode != 0:
            raise BenchError(f"`{' '.join(prefix + argv)}` failed (exit {r.returncode})")
    wrk = shutil.which("wrk")
    if not wrk:
        raise BenchError("wrk still not found after apt-get install")
    return wrk


def build(skip: bool, bin_dir: str | None) -> tuple[Path, Path]:
    """The `switchyard` and sink binaries: built in release mode unless told otherwise."""
    if bin_dir:
        d = Path(bin_dir)
        bins = (d / "switchyard", d / "switchyard-bench-sink")
        missing = [str(b) for b in bins if not b.exists()]
        if missing:
            raise BenchError(f"--bin-dir {bin_dir}: missing {', '.join(missing)}")
        return bins[0].resolve(), bins[1].resolve()
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    bins = (target / "release" / "switchyard", target / "release" / "switchyard-bench-sink")
    if skip:
        missing = [str(b) for b in bins if not b.exists()]
        if missing:
            raise BenchError(f"--no-build, but missing: {', '.join(missing)}")
        return bins
    if not shutil.which("cargo"):
        raise BenchError("cargo not found: install Rust (https://rustup.rs)")
    log(f"building switchyard and the sink (release, target dir {target}) ...")
    argv = ["cargo", "build", "--release", "-p", "switchyard", "-p", "switchyard-bench-sink"]
    r = subprocess.run(argv, cwd=REPO, env=dict(os.environ, CARGO_TARGET_DIR=str(target)), check=False)
    if r.returncode != 0:
        raise BenchError(f"`{' '.join(argv)}` failed (exit {r.returncode})")
    return bins


def start_sink(sink_bin: Path, delay_ms: int, threads: int) -> tuple[subprocess.Popen, str]:
    argv = [str(sink_bin), "--listen", "127.0.0.1:0", "--delay-ms", str(delay_ms), "--threads", str(threads)]
    p = PROCS.start("sink", argv, stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([p.stdout], [], [], 10.0)
    line = p.stdout.readline() if ready else ""
    m = re.match(r"listening on (\S+)", line)
    if not m:
        raise BenchError(f"the sink did not start (said {line!r})")
    return p, f"http://{m.group(1)}"


def sink_count(sink_url: str) -> tuple[int, float | None]:
    _, body = http("GET", f"{sink_url}/count")
    v = json.loads(body)
    return int(v["count"]), v.get("idle_ms")


# --------------------------------------------------------------------------- Node-RED

def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def _satisfies(node_version: str, engines: str | None) -> bool:
    """Only the `>=X.Y.Z` form Node-RED uses; anything else is assumed fine."""
    m = re.fullmatch(r"\s*>=\s*v?([\d.]+)\s*", engines or "")
    return not m or _version_tuple(node_version) >= _version_tuple(m.group(1))


def ensure_node_red(version: str, node: str) -> dict:
    """Installs node-red@VERSION from npm into bench/.cache (once) and checks that the
    Node.js at hand satisfies its `engines`. Returns {node, red_js, version, node_version}."""
    node_bin = shutil.which(node)
    if not node_bin:
        raise BenchError(f"Node.js (`{node}`) not found: install Node.js 20+ or pass --node PATH "
                         "(or leave Node-RED out with --skip node-red)")
    node_version = subprocess.run([node_bin, "--version"], capture_output=True, text=True,
                                  check=False).stdout.strip()
    home = CACHE / f"node-red-{version}"
    red_js = home / "node_modules" / "node-red" / "red.js"
    if not red_js.exists():
        npm = shutil.which("npm")
        if not npm:
            raise BenchError("npm not found: it installs Node-RED (or leave Node-RED out with --skip node-red)")
        log(f"installing node-red@{version} from npm into {home.relative_to(REPO)} ...")
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".node-red-{version}-", dir=CACHE))
        try:
            (tmp / "package.json").write_text('{"name": "bench-node-red", "private": true}\n')
            r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                                "--prefix", str(tmp), f"node-red@{version}"],
                               capture_output=True, text=True, check=False)
            if r.returncode != 0:
                raise BenchError(f"npm install node-red@{version} failed (exit {r.returncode}):\n"
                                 f"{r.stdout[-2000:]}{r.stderr[-2000:]}")
            shutil.rmtree(home, ignore_errors=True)
            tmp.rename(home)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    pkg = json.loads((home / "node_modules" / "node-red" / "package.json").read_text())
    engines = (pkg.get("engines") or {}).get("node")
    if not _satisfies(node_version, engines):
        raise BenchError(f"node-red@{pkg['version']} needs Node.js {engines}, this is {node_version}: "
                         f"pass --node-red-version {NODE_RED_VERSION} (the newest for Node.js 20) "
                         "or --node /path/to/a/newer/node")
    return {"node": node_bin, "red_js": red_js, "version": pkg["version"], "node_version": node_version}
