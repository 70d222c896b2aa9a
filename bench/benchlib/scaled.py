"""Scaled out: `switchyard serve --no-workers` and N `switchyard worker` processes over
RabbitMQ (the jobs) and PostgreSQL (the store), measured like the embedded e2e load."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
import uuid
from pathlib import Path

from .common import PROCS, REPO, BenchError, log, proc_cpu_secs, proc_status_kib, tail
from .targets import Server

SERVICES = REPO / "tests" / "services"
ENV_DB, ENV_AMQP = "SWITCHYARD_TEST_DATABASE_URL", "SWITCHYARD_TEST_AMQP_URL"


def env_urls() -> tuple[str, str] | None:
    """The test suite's PostgreSQL and RabbitMQ, when the environment names both."""
    db, amqp = os.environ.get(ENV_DB), os.environ.get(ENV_AMQP)
    return (db, amqp) if db and amqp else None


def kind_workers(kind: str) -> int:
    """`scaled-w2-slow` -> 2; 0 for the embedded kinds."""
    m = re.match(r"scaled-w(\d+)", kind)
    return int(m.group(1)) if m else 0


def unsupported(bin_path: Path) -> str | None:
    """Why this checkout cannot measure scaled out, or None."""
    r = subprocess.run([str(bin_path), "worker", "--help"], capture_output=True, text=True, check=False)
    if r.returncode != 0 or "--amqp-url" not in r.stdout:
        return f"{bin_path} has no `worker` command (scaled-out mode)"
    if env_urls() is None and not (SERVICES / "rabbitmq.sh").exists():
        return f"{SERVICES / 'rabbitmq.sh'} is missing and {ENV_DB}/{ENV_AMQP} are not set"
    return None


def _psql() -> str:
    found = shutil.which("psql") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))), None)
    if not found:
        raise BenchError("psql not found (it comes with Debian's postgresql-client)")
    return str(found)


def _with_database(url: str, name: str) -> str:
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(u._replace(path=f"/{name}"))


class Services:
    """A PostgreSQL and a RabbitMQ: the test suite's (from the environment) when it names
    both, else private ones started with tests/services/*.sh in a directory of their own
    and destroyed by stop(). Every measurement gets a fresh database and queue."""

    def __init__(self) -> None:
        self.dir: Path | None = None
        urls = env_urls()
        self.private = urls is None
        if urls:
            self.pg_url, self.amqp_url = urls
            self.psql_bin = _psql()
            log(f"scaled: using the PostgreSQL and RabbitMQ of {ENV_DB} and {ENV_AMQP}")
            return
        self.dir = Path(tempfile.mkdtemp(prefix="switchyard-bench-services-"))
        os.chmod(self.dir, 0o755)  # the postgres user must reach its data directory (as root)
        log("scaled: starting a private PostgreSQL and RabbitMQ (tests/services/*.sh; installed when missing) ...")
        try:
            self.pg_url = self._start("postgres", ENV_DB)
            self.amqp_url = self._start("rabbitmq", ENV_AMQP)
            self.psql_bin = _psql()   # after postgres.sh, which installs it when missing
        except BaseException:
            self.stop()
            raise

    def _start(self, name: str, var: str) -> str:
        script = SERVICES / f"{name}.sh"
        if not script.exists():
            raise BenchError(f"{script} is missing: it starts the {name} server of the scaled-out measurement")
        r = subprocess.run([str(script), "start", str(self.dir / name)], capture_output=True, text=True, check=False)
        for line in r.stdout.splitlines():
            if line.startswith(f"export {var}="):
                return line.split("=", 1)[1].strip().strip("'\"")
        raise BenchError(f"{script.name} start failed (exit {r.returncode}):\n{r.stderr[-2000:]}")

    def psql(self, url: str, sql: str) -> str:
        r = subprocess.run([self.psql_bin, url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise BenchError(f"psql failed: {sql[:80]}: {r.stderr.strip()}")
        return r.stdout

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        self.psql(self.pg_url, f"CREATE DATABASE {name}")
        return _with_database(self.pg_url, name)

    def drop_database(self, name: str) -> None:
        try:
            self.psql(self.pg_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except BenchError as e:
            log(f"scaled: {e}")

    def stop(self) -> None:
        if not self.private or self.dir is None:
            return
        for name in ("rabbitmq", "postgres"):
            subprocess.run([str(SERVICES / f"{name}.sh"), "destroy", str(self.dir / name)],
                           capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class Deployment(Server):
    """`serve --no-workers` (API and webhooks; its --data holds only the master key) and
    `workers` worker processes, on a fresh database and a fresh queue. The sink URL is set
    as the `sink_url` resource before the workers start, so they read it at start."""

    system = "switchyard-scaled"

    def __init__(self, ctx: dict, label: str, workers: int, concurrency: int, sink_url: str):
        args, services = ctx["args"], ctx["services"]
        self.services = services
        self.db_name = re.sub(r"[^a-z0-9_]", "_", f"bench_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}".lower())
        self.db_url = services.create_database(self.db_name)
        queue = f"bench.{label}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        common = ["--database-url", self.db_url, "--amqp-url", services.amqp_url, "--amqp-queue", queue]
        self.workers: list[tuple[subprocess.Popen, object, Path]] = []
        try:
            super().__init__(ctx, label, extra=["--no-workers", *common])
            self._start_workers(ctx, label, workers, concurrency, sink_url, common)
        except BaseException:
            if getattr(self, "proc", None) is not None:
                self.stop()
            services.drop_database(self.db_name)
            raise

    def _start_workers(self, ctx: dict, label: str, workers: int, concurrency: int, sink_url: str,
                       common: list[str]) -> None:
        args = ctx["args"]
        if not args.literal_url:
            r = self.cli("resource", "set", "sink_url", sink_url)
            if r.returncode != 0:
                raise BenchError(f"`switchyard resource set sink_url ...` failed (exit {r.returncode}): "
                                 f"{r.stderr.strip()}")
        whelp = ctx["worker_help"]
        flags = [f for f in ("--allow-private-networks",) if f in ctx["serve_flags"] and f in whelp]
        key = self.data / "master.key"
        if "--master-key-file" in whelp and key.exists():
            flags += ["--master-key-file", str(key)]
        env = dict(os.environ, NO_COLOR="1")
        for i in range(workers):
            path = ctx["work"] / f"worker{i + 1}-{label}.log"
            f = open(path, "wb")  # pylint: disable=consider-using-with
            argv = [str(self.bin), "worker", "--stories", str(ctx["stories"]), "--packs", str(ctx["work"] / "packs"),
                    "--concurrency", str(concurrency), *common, *flags, *args.worker_arg]
            p = PROCS.start(f"worker{i + 1}", argv, stdout=f, stderr=subprocess.STDOUT, env=env)
            self.workers.append((p, f, path))

    def pids(self) -> list[int]:
        return [self.pid] + [p.pid for p, _, _ in self.workers]

    def cpu_secs(self) -> float:
        """CPU time of every Switchyard process of the deployment, added up."""
        return sum(proc_cpu_secs(pid) for pid in self.pids())

    def rss_kib(self, key: str) -> int:
        """Memory of every Switchyard process of the deployment, added up."""
        return sum(proc_status_kib(pid, key) for pid in self.pids())

    def log_paths(self) -> list[Path]:
        return [self.log_path] + [path for _, _, path in self.workers]

    def log_tail(self) -> str:
        parts = [f"serve:\n{tail(self.log_path)}"]
        for i, (p, _, path) in enumerate(self.workers):
            state = "running" if p.poll() is None else f"exited with {p.returncode}"
            parts.append(f"worker {i + 1} ({state}):\n{tail(path)}")
        return "\n".join(parts)

    def check_alive(self) -> None:
        for i, (p, _, path) in enumerate(self.workers):
            if p.poll() is not None:
                raise BenchError(f"switchyard worker {i + 1} exited with {p.returncode}; its log:\n{tail(path)}")

    def run_latencies_ms(self, story: str, since_wall: float) -> list[float] | None:
        """Webhook-to-finish times (ms) of the runs of `story` started after `since_wall`."""
        try:
            out = self.services.psql(
                self.db_url,
                "SELECT EXTRACT(EPOCH FROM finished_at - started_at) * 1000 FROM runs "
                f"WHERE story = '{story}' AND started_at >= to_timestamp({since_wall:.6f}) "
                "AND finished_at IS NOT NULL")
            return [float(x) for x in out.split()]
        except (BenchError, ValueError):
            return None

    def store_bytes(self) -> int | None:
        try:
            return int(self.services.psql(self.db_url, "SELECT pg_database_size(current_database())").strip())
        except (BenchError, ValueError):
            return None

    def stop(self) -> float:
        took = 0.0
        for p, f, _ in self.workers:
            took += PROCS.stop(p)
            f.close()
        return took + super().stop()

    def cleanup(self) -> None:
        super().cleanup()
        self.services.drop_database(self.db_name)
