"""Shared plumbing of bench/run: processes, /proc readings, HTTP, the payload, formatting."""

from __future__ import annotations

import http.client as httpclient
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent   # bench/
REPO = HERE.parent
OUT = HERE / "out"
CACHE = HERE / ".cache"

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAYLOAD_BYTES = 1024


class BenchError(Exception):
    """A failure worth a clear message (no traceback)."""


# --------------------------------------------------------------------------- processes

class Procs:
    """Every long-running process this script started, stopped in reverse order on exit."""

    def __init__(self) -> None:
        self.live: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(argv, **kw)  # pylint: disable=consider-using-with
        self.live.append((name, p))
        return p

    def stop(self, p: subprocess.Popen, grace: float = 20.0) -> float:
        """SIGTERM, then SIGKILL after `grace` seconds. Returns how long it took."""
        t = time.monotonic()
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.live = [(n, q) for n, q in self.live if q is not p]
        return time.monotonic() - t

    def stop_all(self) -> None:
        for _, p in reversed(list(self.live)):
            try:
                self.stop(p, grace=10.0)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass


PROCS = Procs()


def log(msg: str) -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """One request on a new connection; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class KeepAlive:
    """Sequential requests on one kept-alive connection (what a browser or the CLI's pool
    does), so a latency figure is the server's time, not a TCP handshake's."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        m = re.match(r"http://([^:/]+):(\d+)", base_url)
        if not m:
            raise BenchError(f"not an http URL: {base_url}")
        self.host, self.port, self.timeout = m.group(1), int(m.group(2)), timeout
        self.conn = httpclient.HTTPConnection(self.host, self.port, timeout=timeout)

    def get(self, path: str) -> tuple[int, bytes, float]:
        """(status, body, seconds)."""
        for attempt in (1, 2):
            t = time.perf_counter()
            try:
                self.conn.request("GET", path)
                r = self.conn.getresponse()
                body = r.read()
                return r.status, body, time.perf_counter() - t
            except (httpclient.HTTPException, OSError):
                self.conn.close()
                self.conn = httpclient.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def wait_http(url: str, ok, seconds: float, proc: subprocess.Popen | None = None,
              what: str = "server", log_path: Path | None = None) -> None:
    """Polls GET `url` until `ok(status)`; fails if `proc` exits or time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}; its log:\n{tail(log_path)}")
        try:
            if ok(http("GET", url, timeout=1.0)[0]):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not answer {url} within {seconds:g} s; its log:\n{tail(log_path)}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- /proc

def proc_cpu_secs(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {key} in /proc/{pid}/status")


def system_cpu_secs() -> tuple[float, float]:
    """Busy and iowait CPU seconds of the whole machine, all CPUs together (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    idle, iowait = v[3], v[4]
    return (sum(v[:8]) - idle - iowait) / CLK_TCK, iowait / CLK_TCK


def children_cpu_secs() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def self_cpu_secs() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- text

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(s: str) -> str:
    return ANSI.sub("", s)


def tail(path: Path | None, n: int = 30) -> str:
    if path is None:
        return "(no log)"
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + strip_ansi(line) for line in lines[-n:])


def fmt_num(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def agg(values: list) -> dict | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


# --------------------------------------------------------------------------- facts

def git_info() -> dict:
    def git(*a):
        r = subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True, check=False)
        return r.stdout.strip() if r.returncode == 0 else None
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def machine_info() -> dict:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = None
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        pass
    return {
        "loadavg_before": loadavg(),
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "mem_mib": mem_kib // 1024 if mem_kib else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def make_payload(size: int = PAYLOAD_BYTES) -> bytes:
    """A fixed, realistic-looking JSON object of exactly `size` bytes."""
    body = {
        "id": "evt_01HZX3B7Q9K2M4N6P8R0S2T4V6",
        "type": "order.created",
        "source": "switchyard-bench",
        "created_at": "2025-01-01T12:00:00Z",
        "customer": {"id": "cus_4242", "email": "ada@example.com", "name": "Ada Lovelace",
                     "tier": "gold", "country": "GB"},
        "items": [{"sku": f"SKU-{i:04d}", "qty": i % 3 + 1, "price_cents": 1000 + 37 * i,
                   "title": f"Analytical engine part {i}"} for i in range(6)],
        "tags": ["bench", "webhook", "json", "fixed"],
        "total_cents": sum(1000 + 37 * i for i in range(6)),
        "note": "",
    }
    base = len(json.dumps(body, separators=(",", ":")))
    if base > size:
        raise BenchError("payload template larger than the target size")
    filler = "lorem ipsum dolor sit amet "
    body["note"] = (filler * (size // len(filler) + 1))[: size - base]
    out = json.dumps(body, separators=(",", ":")).encode()
    assert len(out) == size, len(out)
    return out
