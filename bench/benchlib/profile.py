"""`--perf`: sample the Switchyard process with `perf record` during each load, then fold the
stacks into a flame graph (inferno) and list the top frames by self time."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

from .common import OUT, PROCS, REPO, BenchError, log

PERF_FREQ = 499


def start_perf(ctx: dict, pid: int, label: str) -> dict:
    perf = shutil.which("perf")
    if not perf:
        raise BenchError("--perf needs perf: `apt-get install -y linux-perf` (Debian)")
    out_dir = OUT / f"profile-{ctx['stamp']}"
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / f"{label}.perf.data"
    # cpu-clock: a software event, so it samples in VMs without hardware counters too; DWARF
    # call graphs because release builds omit frame pointers (they keep line tables: debug = 1).
    argv = [perf, "record", "-q", "-e", "cpu-clock", "-F", str(PERF_FREQ), "--call-graph", "dwarf,16384",
            "-p", str(pid), "-o", str(data)]
    p = PROCS.start("perf", argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return {"proc": p, "data": data, "label": label, "dir": out_dir, "argv": argv}


def stop_perf(ctx: dict, perf: dict) -> dict:
    p = perf["proc"]
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=120)
    finally:
        PROCS.stop(p)
    data: Path = perf["data"]
    if not data.exists():
        raise BenchError(f"perf record wrote nothing: {err.strip()[-1000:]}")
    log(f"    profiled into {data.relative_to(REPO)}; folding ...")
    top = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "symbol",
                          "--stdio", "--percent-limit", "0.7", "-g", "none"],
                         capture_output=True, text=True, check=False).stdout
    top_path = data.with_suffix(".top.txt")
    top_path.write_text(top)
    res = {"data": str(data.relative_to(REPO)), "top": str(top_path.relative_to(REPO)),
           "command": " ".join(perf["argv"])}
    collapse, flame = shutil.which("inferno-collapse-perf"), shutil.which("inferno-flamegraph")
    if collapse and flame:
        folded = data.with_suffix(".folded")
        svg = data.with_suffix(".svg")
        script = subprocess.Popen(["perf", "script", "-i", str(data), "--no-inline"],  # pylint: disable=consider-using-with
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        with open(folded, "wb") as f:
            subprocess.run([collapse], stdin=script.stdout, stdout=f, check=False)
        script.wait()
        with open(folded, "rb") as f, open(svg, "wb") as g:
            subprocess.run([flame, "--title", f"switchyard {perf['label']}"], stdin=f, stdout=g, check=False)
        res.update(folded=str(folded.relative_to(REPO)), svg=str(svg.relative_to(REPO)))
    else:
        log("    (no flame graph: `cargo install inferno` gives inferno-collapse-perf and inferno-flamegraph)")
    return res
