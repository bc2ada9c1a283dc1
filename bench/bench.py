#!/usr/bin/env python3
"""lockdown's benchmarks against the tools a user would otherwise use, in one run on this machine.

Run it as `bash bench/run [--quick] [--out FILE]` (see bench/README.md). Sections:

  relay    the front end's /api/items relay vs nginx proxy_pass (upstream keep-alive) in front of
           the same back end, and the back end alone as the ceiling; wrk at several concurrencies
  probe    probe serve's /diag/tcpping and /diag/resolve vs blackbox_exporter's tcp and dns
           modules, on the same loopback TCP target and the same loopback DNS server
  startup  exec -> first 200 on /healthz per binary, idle RSS, RSS after load, binary sizes,
           the runtime image size (full run only: it needs a static build and podman)
  smoke    wall time of the lab's default suite, a 20-check passing suite, a suite with timeouts

Rules it keeps: every server listens on 127.0.0.1 and every request goes to 127.0.0.1; rounds
alternate between the sides (A, B, A, B, ...) and the report gives medians and ratios from this
one run; every process it starts runs in its own session, is stopped by pid when the run ends
(SIGTERM, SIGKILL after a bound), and every wait is bounded. Python 3.11 stdlib only.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import http.client
import json
import os
import platform
import re
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
API_KEY = "bench-api-key"
DIAG_TOKEN = "bench-diag-token"
ITEMS = 10
STOP_TIMEOUT_S = 5.0
READY_TIMEOUT_S = 20.0
PEERS = {  # tool -> Debian package
    "nginx": "nginx",
    "wrk": "wrk",
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
}
OUR_BINS = ("backend", "frontend", "probe", "lockdown-bench")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# settings


@dataclass
class Settings:
    quick: bool
    out: Path
    json_out: Path | None
    bin_dir: Path | None
    candidate_dir: Path | None
    notes: Path | None
    sections: list[str]
    install: bool
    relay_concurrency: list[int]
    scale_checks: list[int]
    scale_instances: list[int]
    probe_concurrency: list[int]
    rounds: int
    duration_s: int
    warmup_s: int
    startup_runs: int
    smoke_rounds: int
    smoke_pause_ms: int
    image: bool
    argv: list[str] = field(default_factory=list)
    from_json: Path | None = None


def parse_args(argv: list[str]) -> Settings:
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="lockdown vs nginx and blackbox_exporter, start-up, footprint, smoke suite "
        "(loopback only). The full run takes about 25 minutes; --quick a few seconds.",
    )
    p.add_argument("--quick", action="store_true",
                   help="tiny durations, one round, one concurrency: proves the harness works "
                   "(CI); the figures mean nothing")
    p.add_argument("--out", type=Path,
                   help="report file (default: BENCHMARKS.md at the repository root for a full "
                   "run, a temp file for --quick)")
    p.add_argument("--json", dest="json_out", type=Path, help="also write every raw figure here")
    p.add_argument("--from-json", type=Path,
                   help="run nothing: write the report again from a --json file of an earlier "
                   "run (to update the notes without measuring again)")
    p.add_argument("--bin-dir", type=Path,
                   help="use the release binaries in this folder (backend, frontend, probe, "
                   "lockdown-bench) instead of building them")
    p.add_argument("--candidate-bin-dir", type=Path,
                   help="also measure the frontend and probe in this folder (built from a "
                   "patched tree) as an extra side of the relay and probe comparisons: a "
                   "proposed fix, measured in the same run")
    p.add_argument("--notes", type=Path, default=REPO / "bench" / "notes.md",
                   help="markdown included in the report under 'Notes' when the file exists "
                   "(default: bench/notes.md)")
    p.add_argument("--sections", default="relay,probe,startup,smoke,scale,load",
                   help="comma-separated subset of relay,probe,startup,smoke,scale,load")
    p.add_argument("--scale-checks", help="scale: suite sizes (default 10,100,1000; quick 10)")
    p.add_argument("--scale-instances",
                   help="scale: instances per app (default 2,10,100; quick 2,10)")
    p.add_argument("--no-install", action="store_true",
                   help="never run apt-get; stop if a peer is missing")
    p.add_argument("--rounds", type=int, help="rounds per comparison (default 5; quick 1)")
    p.add_argument("--duration", type=int, help="seconds per wrk run (default 8; quick 1)")
    p.add_argument("--concurrency", help="relay wrk concurrencies (default 1,16,64,256; quick 16)")
    p.add_argument("--probe-concurrency",
                   help="probe wrk concurrencies (default 1,16,64; quick 16)")
    p.add_argument("--startup-runs", type=int, help="starts per binary (default 25; quick 3)")
    p.add_argument("--no-image", action="store_true",
                   help="skip the runtime image (a static build and podman; full run only)")
    a = p.parse_args(argv)
    quick = a.quick
    sections = [s.strip() for s in a.sections.split(",") if s.strip()]
    unknown = set(sections) - {"relay", "probe", "startup", "smoke", "scale", "load"}
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")

    def ints(text: str | None, default: list[int]) -> list[int]:
        return [int(x) for x in text.split(",")] if text else default

    out = a.out
    if out is None:
        out = (Path(tempfile.gettempdir()) / "lockdown-BENCHMARKS.quick.md") if quick \
            else REPO / "BENCHMARKS.md"
    return Settings(
        quick=quick,
        out=out,
        json_out=a.json_out,
        bin_dir=a.bin_dir,
        candidate_dir=a.candidate_bin_dir.resolve() if a.candidate_bin_dir else None,
        notes=a.notes,
        sections=sections,
        install=not a.no_install,
        relay_concurrency=ints(a.concurrency, [16] if quick else [1, 16, 64, 256]),
        probe_concurrency=ints(a.probe_concurrency, [16] if quick else [1, 16, 64]),
        rounds=a.rounds or (1 if quick else 5),
        duration_s=a.duration or (1 if quick else 8),
        warmup_s=0 if quick else 2,
        startup_runs=a.startup_runs or (3 if quick else 25),
        smoke_rounds=1 if quick else 5,
        smoke_pause_ms=0 if quick else 3000,
        scale_checks=ints(a.scale_checks, [10] if quick else [10, 100, 1000]),
        scale_instances=ints(a.scale_instances, [2, 10] if quick else [2, 10, 100]),
        image=not quick and not a.no_image and "startup" in sections,
        argv=argv,
        from_json=a.from_json,
    )


# --------------------------------------------------------------------------------------------
# output


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Failure(Exception):
    """A section could not run (as opposed to a target being missed)."""


# --------------------------------------------------------------------------------------------
# processes: every one we start, stopped by pid at the end


class Procs:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], *,
              stdin=subprocess.DEVNULL, stdout=None) -> subprocess.Popen:
        logfile = open(self.workdir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            argv, env=env, stdin=stdin,
            stdout=stdout if stdout is not None else logfile,
            stderr=logfile, start_new_session=True, cwd=self.workdir,
        )
        logfile.close()
        self.running.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
            except ProcessLookupError:
                pass
        self.running = [(n, p) for n, p in self.running if p is not proc]

    def stop_all(self) -> None:
        for _, proc in reversed(list(self.running)):
            try:
                self.stop(proc)
            except Exception as error:  # noqa: BLE001 - cleanup must go on
                log(f"could not stop pid {proc.pid}: {error}")

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def base_env() -> dict[str, str]:
    """A clean environment: nothing from ours (PORT, DNS_SERVERS, RUST_LOG, proxies …) leaks in."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env["LOG_FORMAT"] = "text"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, headers: dict[str, str] | None = None,
             method: str = "GET", body: bytes | None = None,
             timeout: float = 3.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(procs: Procs, name: str, proc: subprocess.Popen, port: int,
               path: str = "/healthz", timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failure(f"{name} exited with {proc.returncode}:\n{procs.log_tail(name)}")
        try:
            status, _ = http_get(port, path, timeout=1.0)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise Failure(f"{name} did not answer 200 on {path} within {timeout:.0f} s:\n"
                  f"{procs.log_tail(name)}")


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def tree(pid: int) -> list[int]:
    return [pid] + [c for child in children(pid) for c in tree(child)]


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """User and system CPU time of these processes so far, in seconds."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except OSError:
            pass
    return user / CLK_TCK, system / CLK_TCK


# --------------------------------------------------------------------------------------------
# peers and builds


def ensure_peers(settings: Settings) -> dict[str, str]:
    missing = [tool for tool in PEERS if shutil.which(tool) is None]
    if missing:
        packages = sorted({PEERS[t] for t in missing})
        if not settings.install or os.geteuid() != 0:
            why = "--no-install was given" if not settings.install else "not root"
            raise SystemExit(
                f"bench: missing {', '.join(missing)}; {why}, so install them yourself:\n"
                f"  sudo apt-get install -y {' '.join(packages)}")
        log(f"installing {' '.join(packages)} from Debian")
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(cmd, env=env, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, timeout=900, check=True)
            subprocess.run(cmd, env=env, timeout=900, check=True)
        still = [tool for tool in PEERS if shutil.which(tool) is None]
        if still:
            raise SystemExit(f"bench: still missing after apt-get: {', '.join(still)}")
    return {tool: shutil.which(tool) or tool for tool in PEERS}


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")


def build(settings: Settings) -> Path:
    if settings.bin_dir:
        bin_dir = settings.bin_dir.resolve()
    else:
        cmd = ["cargo", "build", "--release", "--locked",
               "-p", "frontend", "-p", "backend", "-p", "probe", "-p", "lockdown-bench"]
        log("building: " + " ".join(cmd))
        subprocess.run(cmd, cwd=REPO, check=True, timeout=3600)
        bin_dir = target_dir() / "release"
    if settings.candidate_dir:
        for name in ("frontend", "probe"):
            if not os.access(settings.candidate_dir / name, os.X_OK):
                raise SystemExit(f"bench: {settings.candidate_dir / name} is missing")
    for name in OUR_BINS:
        if not os.access(bin_dir / name, os.X_OK):
            raise SystemExit(f"bench: {bin_dir / name} is missing (build with "
                             "cargo build --release -p lockdown-bench …, or fix --bin-dir)")
    return bin_dir


def version_of(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        text = (out.stdout + out.stderr).strip().splitlines()
        return text[0] if text else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine(tools: dict[str, str]) -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    os_name = "?"
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    # The report and its hand-written notes are this run's output, not changes to the code.
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", ".",
                            ":!BENCHMARKS.md", ":!bench/notes.md"],
                           capture_output=True, text=True).stdout.splitlines()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.strip(),
        "kernel": platform.release(),
        "os": os_name,
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "git": git,
        "dirty": dirty,
        "versions": {
            "nginx": version_of([tools["nginx"], "-v"]),
            "wrk": version_of([tools["wrk"], "-v"]).split("Copyright")[0].strip(),
            "blackbox_exporter": version_of([tools["prometheus-blackbox-exporter"], "--version"]),
            "rustc": version_of(["rustc", "-V"]),
            "python": platform.python_version(),
        },
    }


# --------------------------------------------------------------------------------------------
# wrk


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int

    def ok(self) -> bool:
        return self.requests > 0 and self.non_2xx == 0 and self.socket_errors == 0


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"not a wrk duration: {text}")
    return float(m.group(1)) * UNITS[m.group(2)]


def wrk_argv(wrk: str, url: str, connections: int, duration_s: int,
             headers: dict[str, str], script: Path | None = None) -> list[str]:
    threads = min(2, connections)  # wrk needs connections >= threads
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency",
            "--timeout", "5s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    if script:
        argv += ["-s", str(script)]
    return argv + [url]


def run_wrk(argv: list[str], duration_s: float) -> tuple[WrkResult, str]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    text = out.stdout + out.stderr
    if out.returncode != 0:
        raise Failure(f"wrk failed ({out.returncode}): {text.strip()}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    total = re.search(r"(\d+) requests in", text)
    if not (rps and p50 and p99 and total):
        raise Failure(f"cannot read wrk's output:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       text)
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=to_ms(p50.group(1)),
        p99_ms=to_ms(p99.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        # A read error on a connection the server closed at the end counts; connect and timeout
        # errors are what matter.
        socket_errors=sum(int(x) for x in errors.groups()) if errors else 0,
    ), text


@dataclass
class System:
    """One side of a comparison: a URL wrk hits and the processes that serve it."""
    key: str
    label: str
    port: int
    path: str
    headers: dict[str, str]
    pids: callable  # -> list[int], the serving processes (for CPU time)


def compare(tools: dict[str, str], systems: list[System], concurrency: list[int],
            settings: Settings) -> dict:
    """Alternating rounds: for each concurrency, warm every side, then rounds r = 0..n-1 each
    running every side once, the starting side rotating with r."""
    results: dict = {"commands": {}, "by_concurrency": {}}
    for s in systems:
        url = f"http://{LOOPBACK}:{s.port}{s.path}"
        argv = wrk_argv("wrk", url, 2, settings.duration_s, s.headers)
        results["commands"][s.key] = " ".join(shlex.quote(a) for a in argv).replace(
            "-c2", "-c$C")
    for c in concurrency:
        per: dict[str, list[dict]] = {s.key: [] for s in systems}
        for s in systems:
            url = f"http://{LOOPBACK}:{s.port}{s.path}"
            if settings.warmup_s > 0:
                run_wrk(wrk_argv(tools["wrk"], url, c, settings.warmup_s, s.headers),
                        settings.warmup_s)
        for r in range(settings.rounds):
            for i in range(len(systems)):
                s = systems[(r + i) % len(systems)]
                url = f"http://{LOOPBACK}:{s.port}{s.path}"
                pids = s.pids()
                user0, sys0 = cpu_seconds(pids)
                result, _ = run_wrk(wrk_argv(tools["wrk"], url, c, settings.duration_s,
                                             s.headers), settings.duration_s)
                user1, sys1 = cpu_seconds(pids)
                per_req = (1e6 / result.requests) if result.requests else None
                row = result.__dict__ | {
                    "round": r,
                    "user_us_per_req": (user1 - user0) * per_req if per_req else None,
                    "sys_us_per_req": (sys1 - sys0) * per_req if per_req else None,
                }
                per[s.key].append(row)
                log(f"  c={c:<3} round {r + 1}/{settings.rounds} {s.label:<34} "
                    f"{result.rps:>9.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                    f"p99 {result.p99_ms:7.2f} ms"
                    + ("" if result.ok() else
                       f"  !! non-2xx {result.non_2xx}, socket errors {result.socket_errors}"))
                time.sleep(0.2)
        results["by_concurrency"][c] = {
            key: summarize(rows) | {"rounds": rows} for key, rows in per.items()
        }
    return results


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(rows: list[dict]) -> dict:
    return {
        "rps": median([r["rps"] for r in rows]),
        "p50_ms": median([r["p50_ms"] for r in rows]),
        "p99_ms": median([r["p99_ms"] for r in rows]),
        "rps_min": min(r["rps"] for r in rows),
        "rps_max": max(r["rps"] for r in rows),
        "user_us_per_req": median([r["user_us_per_req"] for r in rows]),
        "sys_us_per_req": median([r["sys_us_per_req"] for r in rows]),
        "non_2xx": sum(r["non_2xx"] for r in rows),
        "socket_errors": sum(r["socket_errors"] for r in rows),
    }


# --------------------------------------------------------------------------------------------
# shared pieces: the targets helper, the back end with items


@dataclass
class Targets:
    dns: str
    tcp: str
    name: str
    address: str
    proc: subprocess.Popen
    # PostgreSQL when installed: {"url", "dns", "version"} (the back end's DATABASE_URL and
    # DNS_SERVERS), else None.
    database: dict | None = None


def start_targets(procs: Procs, bins: Path) -> Targets:
    proc = procs.start("targets", [str(bins / "lockdown-bench"), "targets",
                                   "--max-seconds", "7200"],
                       base_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT_S)
    if not ready:
        raise Failure("the targets helper printed nothing within "
                      f"{READY_TIMEOUT_S:.0f} s:\n{procs.log_tail('targets')}")
    line = proc.stdout.readline().decode()
    try:
        info = json.loads(line)
    except json.JSONDecodeError as error:
        raise Failure(f"the targets helper said {line!r}: {error}") from error
    for key in ("dns", "tcp"):
        if not info[key].startswith(LOOPBACK + ":"):
            raise Failure(f"the targets helper is not on loopback: {info}")
    return Targets(info["dns"], info["tcp"], info["name"], info["address"], proc,
                   info.get("database"))


def backend_env(data_dir: Path, port: int, dns: str) -> dict[str, str]:
    return base_env() | {
        "LISTEN_ADDR": f"{LOOPBACK}:{port}",
        "API_KEYS": API_KEY,
        "DATA_DIR": str(data_dir),
        "DNS_SERVERS": dns,
    }


def start_backend(procs: Procs, bins: Path, data_dir: Path, dns: str,
                  name: str = "backend", database: dict | None = None
                  ) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = backend_env(data_dir, port, dns)
    if database:
        # The back end on PostgreSQL: the database's name resolves through its own DNS view.
        env |= {"DATABASE_URL": database["url"], "DNS_SERVERS": database["dns"]}
    proc = procs.start(name, [str(bins / "backend")], env)
    wait_ready(procs, name, proc, port)
    return proc, port


def seed_items(port: int) -> None:
    status, body = http_get(port, "/api/items", {"X-Api-Key": API_KEY})
    have = len(json.loads(body)["items"]) if status == 200 else 0
    for n in range(have, ITEMS):
        payload = json.dumps({"name": f"item {n + 1}", "note": "a benchmark item"}).encode()
        status, body = http_get(port, "/api/items", {"X-Api-Key": API_KEY,
                                                     "Content-Type": "application/json"},
                                method="POST", body=payload)
        if status != 201:
            raise Failure(f"creating an item answered {status}: {body[:200]!r}")


# --------------------------------------------------------------------------------------------
# section 1: relay vs nginx


NGINX_CONF = """\
# Generated by bench/run: nginx as a user would put it in front of the back end.
worker_processes auto;          # one per core, as tokio starts one worker thread per core
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;             # lockdown's front end logs no line per request either
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream backend {{
        server 127.0.0.1:{backend};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location /api/items {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Api-Key {key};
        }}
    }}
}}
"""


def section_relay(procs: Procs, tools: dict, bins: Path, targets: Targets,
                  settings: Settings, footprint: dict) -> dict:
    log("relay: front end vs nginx in front of the same back end")
    work = procs.workdir / "relay"
    work.mkdir()
    backend, be_port = start_backend(procs, bins, work / "data", targets.dns)
    seed_items(be_port)

    fe_port = free_port()
    fe_env = base_env() | {
        "LISTEN_ADDR": f"{LOOPBACK}:{fe_port}",
        "BACKEND_URL": f"http://{LOOPBACK}:{be_port}",
        "BACKEND_API_KEY": API_KEY,
        "DNS_SERVERS": targets.dns,
    }
    frontend = procs.start("frontend", [str(bins / "frontend")], fe_env)
    wait_ready(procs, "frontend", frontend, fe_port)
    candidate = None
    if settings.candidate_dir:
        cand_port = free_port()
        candidate = procs.start("frontend-candidate", [str(settings.candidate_dir / "frontend")],
                                fe_env | {"LISTEN_ADDR": f"{LOOPBACK}:{cand_port}"})
        wait_ready(procs, "frontend-candidate", candidate, cand_port)

    ng_port = free_port()
    ng_dir = work / "nginx"
    ng_dir.mkdir()
    conf = NGINX_CONF.format(dir=ng_dir, backend=be_port, port=ng_port, key=API_KEY)
    (ng_dir / "nginx.conf").write_text(conf)
    nginx_argv = [tools["nginx"], "-p", str(ng_dir), "-c", str(ng_dir / "nginx.conf"),
                  "-e", str(ng_dir / "error.log")]
    nginx = procs.start("nginx", nginx_argv, base_env())
    wait_ready(procs, "nginx", nginx, ng_port, path="/api/items")

    # The same answer through every path before anything is timed.
    bodies = {}
    for label, port, headers in (("backend", be_port, {"X-Api-Key": API_KEY}),
                                 ("relay", fe_port, {}), ("nginx", ng_port, {})):
        status, body = http_get(port, "/api/items", headers)
        items = json.loads(body).get("items", []) if status == 200 else []
        if status != 200 or len(items) != ITEMS:
            raise Failure(f"{label} /api/items answered {status} with {len(items)} items")
        bodies[label] = body
    if not bodies["backend"] == bodies["relay"] == bodies["nginx"]:
        raise Failure("the relay, nginx and the back end do not answer the same body")

    # The back end on PostgreSQL (when installed), with a relay of its own: the cost of the
    # real database, as the relay's ceiling with each store.
    backend_pg = frontend_pg = None
    if targets.database:
        backend_pg, pg_port = start_backend(procs, bins, work / "data-pg", targets.dns,
                                            "backend-pg", targets.database)
        seed_items(pg_port)
        fe_pg_port = free_port()
        frontend_pg = procs.start("frontend-pg", [str(bins / "frontend")],
                                  fe_env | {"LISTEN_ADDR": f"{LOOPBACK}:{fe_pg_port}",
                                            "BACKEND_URL": f"http://{LOOPBACK}:{pg_port}"})
        wait_ready(procs, "frontend-pg", frontend_pg, fe_pg_port)
        for label, port, headers in (("backend-pg", pg_port, {"X-Api-Key": API_KEY}),
                                     ("relay-pg", fe_pg_port, {})):
            status, body = http_get(port, "/api/items", headers)
            items = json.loads(body).get("items", []) if status == 200 else []
            if status != 200 or len(items) != ITEMS:
                raise Failure(f"{label} /api/items answered {status} with {len(items)} items")
    else:
        log("relay: PostgreSQL is not installed: no PostgreSQL rows (apt-get install postgresql)")

    for name, proc in (("backend", backend), ("frontend", frontend)):
        footprint.setdefault("idle_rss_kb", {})[name] = rss_kb([proc.pid])
    footprint.setdefault("idle_rss_kb", {})["nginx"] = rss_kb(tree(nginx.pid))

    systems = [
        System("relay", "front end relay (lockdown)", fe_port, "/api/items", {},
               lambda: [frontend.pid]),
        System("nginx", "nginx proxy_pass (keep-alive 64)", ng_port, "/api/items", {},
               lambda: tree(nginx.pid)),
        System("backend", "back end alone (ceiling)", be_port, "/api/items",
               {"X-Api-Key": API_KEY}, lambda: [backend.pid]),
    ]
    if candidate:
        systems.insert(1, System("relay_candidate", "front end relay (candidate build)",
                                 cand_port, "/api/items", {}, lambda: [candidate.pid]))
    if backend_pg:
        systems += [
            System("relay_pg", "front end relay, back end on PostgreSQL", fe_pg_port,
                   "/api/items", {}, lambda: [frontend_pg.pid]),
            System("backend_pg", "back end on PostgreSQL alone (ceiling)", pg_port,
                   "/api/items", {"X-Api-Key": API_KEY}, lambda: [backend_pg.pid]),
        ]
    result = compare(tools, systems, settings.relay_concurrency, settings)
    result["postgres"] = targets.database["version"] if backend_pg else None
    result["body_bytes"] = len(bodies["backend"])
    result["nginx_conf"] = conf.replace(str(ng_dir), "$DIR")
    result["nginx_argv"] = " ".join(nginx_argv).replace(str(ng_dir), "$DIR")
    result["env"] = {
        "backend": f"LISTEN_ADDR=127.0.0.1:PORT API_KEYS={API_KEY} DATA_DIR=$DIR/data "
                   f"DNS_SERVERS={targets.dns.split(':')[0]}:DNSPORT LOG_FORMAT=text",
        "frontend": f"LISTEN_ADDR=127.0.0.1:PORT BACKEND_URL=http://127.0.0.1:BACKEND_PORT "
                    f"BACKEND_API_KEY={API_KEY} DNS_SERVERS=127.0.0.1:DNSPORT LOG_FORMAT=text",
    }
    for name, pids in (("backend", [backend.pid]), ("frontend", [frontend.pid]),
                       ("nginx", tree(nginx.pid))):
        footprint.setdefault("loaded_rss_kb", {})[name] = rss_kb(pids)
    for proc in (nginx, frontend, candidate, backend, frontend_pg, backend_pg):
        if proc:
            procs.stop(proc)
    result["candidate"] = str(settings.candidate_dir) if candidate else None
    return result


# --------------------------------------------------------------------------------------------
# section 2: probe vs blackbox_exporter


BLACKBOX_CONF = """\
# Generated by bench/run: the two modules that match /diag/tcpping and /diag/resolve.
modules:
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
  dns_a:
    prober: dns
    timeout: 5s
    dns:
      transport_protocol: udp
      preferred_ip_protocol: ip4
      query_name: {name}
      query_type: A
"""

# Counts answers whose body does not show a successful probe (wrk's response() hook). Used in a
# separate validation run only: calling into Lua for every body would slow the timed runs.
VALIDATE_LUA = """\
bad, total = 0, 0
marker = os.getenv("BENCH_MARKER")
threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0; total = 0 end
function response(status, headers, body)
  total = total + 1
  if status ~= 200 or not string.find(body, marker, 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local b, t = 0, 0
  for _, thread in ipairs(threads) do b = b + thread:get("bad"); t = t + thread:get("total") end
  io.write(string.format("VALIDATION %d %d\\n", b, t))
end
"""


def probe_supports_limits(bins: Path) -> bool:
    out = subprocess.run([str(bins / "probe"), "serve", "--help"], capture_output=True,
                         text=True, timeout=10)
    return "DIAG_CONCURRENCY" in out.stdout


def validate(tools: dict, system: System, marker: str, connections: int, duration_s: int,
             workdir: Path) -> dict:
    script = workdir / "validate.lua"
    script.write_text(VALIDATE_LUA)
    url = f"http://{LOOPBACK}:{system.port}{system.path}"
    argv = wrk_argv(tools["wrk"], url, connections, duration_s, system.headers, script)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60,
                         env=os.environ | {"BENCH_MARKER": marker})
    m = re.search(r"VALIDATION (\d+) (\d+)", out.stdout)
    if not m:
        raise Failure(f"validation run printed no result:\n{out.stdout}{out.stderr}")
    return {"failed": int(m.group(1)), "total": int(m.group(2)), "marker": marker}


def section_probe(procs: Procs, tools: dict, bins: Path, targets: Targets,
                  settings: Settings, footprint: dict) -> dict:
    log("probe: probe serve vs blackbox_exporter on the same targets")
    work = procs.workdir / "probe"
    work.mkdir()
    limits = probe_supports_limits(bins)
    if not limits:
        log("  !! probe serve has no DIAG_CONCURRENCY/DIAG_BURST/DIAG_RATE_PER_S: its /diag "
            "bounds (8 at once, burst 30, 5/s) will answer most requests 429/503")
    pr_port = free_port()
    pr_env = base_env() | {
        "LISTEN_ADDR": f"{LOOPBACK}:{pr_port}",
        "DIAG_TOKEN": DIAG_TOKEN,
        "DIAG_ALLOW": "127.0.0.0/8",
        "DNS_SERVERS": targets.dns,
        # Load-testing the probe itself: lift the /diag bounds well above wrk's concurrency.
        "DIAG_CONCURRENCY": "4096",
        "DIAG_BURST": "100000000",
        "DIAG_RATE_PER_S": "100000000",
    }
    probe = procs.start("probe", [str(bins / "probe"), "serve"], pr_env)
    wait_ready(procs, "probe", probe, pr_port)
    candidate = None
    if settings.candidate_dir:
        cand_port = free_port()
        candidate = procs.start("probe-candidate",
                                [str(settings.candidate_dir / "probe"), "serve"],
                                pr_env | {"LISTEN_ADDR": f"{LOOPBACK}:{cand_port}"})
        wait_ready(procs, "probe-candidate", candidate, cand_port)

    bb_port = free_port()
    bb_conf = BLACKBOX_CONF.format(name=targets.name)
    (work / "blackbox.yml").write_text(bb_conf)
    bb_argv = [tools["prometheus-blackbox-exporter"], f"--config.file={work / 'blackbox.yml'}",
               f"--web.listen-address={LOOPBACK}:{bb_port}"]
    blackbox = procs.start("blackbox", bb_argv, base_env())
    wait_ready(procs, "blackbox", blackbox, bb_port, path="/-/healthy")

    auth = {"Authorization": f"Bearer {DIAG_TOKEN}"}
    tcp_host, tcp_port = targets.tcp.rsplit(":", 1)
    paths = {
        "tcpping": f"/diag/tcpping?host={tcp_host}&port={tcp_port}&count=1&interval_ms=0",
        "bb_tcp": f"/probe?module=tcp_connect&target={targets.tcp}",
        "resolve": f"/diag/resolve?host={targets.name}&type=A&server={targets.dns}",
        "resolve_cfg": f"/diag/resolve?host={targets.name}&type=A",
        "bb_dns": f"/probe?module=dns_a&target={targets.dns}",
    }
    markers = {
        "tcpping": '"verdict":"reachable"',
        "bb_tcp": "probe_success 1",
        "resolve": f'"ip":"{targets.address}"',
        "resolve_cfg": f'"ip":"{targets.address}"',
        "bb_dns": "probe_success 1",
    }
    for key, path in paths.items():
        port, headers = (pr_port, auth) if not key.startswith("bb_") else (bb_port, {})
        status, body = http_get(port, path, headers)
        if status != 200 or markers[key].encode() not in body:
            raise Failure(f"{key}: GET {path} answered {status}: {body[:300]!r}")
    footprint.setdefault("idle_rss_kb", {})["probe"] = rss_kb([probe.pid])
    footprint.setdefault("idle_rss_kb", {})["blackbox_exporter"] = rss_kb([blackbox.pid])

    def system(key: str, label: str) -> System:
        if key.endswith("_candidate"):
            return System(key, label, cand_port, paths[key.removesuffix("_candidate")], auth,
                          lambda: [candidate.pid])
        ours = not key.startswith("bb_")
        return System(key, label, pr_port if ours else bb_port, paths[key],
                      auth if ours else {}, (lambda: [probe.pid]) if ours
                      else (lambda: [blackbox.pid]))

    tcp_sides = [system("tcpping", "/diag/tcpping count=1 (lockdown)"),
                 system("bb_tcp", "blackbox tcp_connect")]
    dns_sides = [system("resolve", "/diag/resolve server= (lockdown)"),
                 system("bb_dns", "blackbox dns (A)"),
                 system("resolve_cfg", "/diag/resolve DNS_SERVERS (lockdown)")]
    if candidate:
        tcp_sides.append(system("tcpping_candidate", "/diag/tcpping (candidate build)"))
        dns_sides.append(system("resolve_candidate", "/diag/resolve server= (candidate)"))
    tcp = compare(tools, tcp_sides, settings.probe_concurrency, settings)
    dns = compare(tools, dns_sides, settings.probe_concurrency, settings)
    top = max(settings.probe_concurrency)
    checks = {}
    for key, label in (("tcpping", "tcpping"), ("bb_tcp", "bb_tcp"), ("resolve", "resolve"),
                       ("bb_dns", "bb_dns")):
        checks[key] = validate(tools, system(key, label), markers[key], top,
                               min(settings.duration_s, 3), work)
    footprint.setdefault("loaded_rss_kb", {})["probe"] = rss_kb([probe.pid])
    footprint.setdefault("loaded_rss_kb", {})["blackbox_exporter"] = rss_kb([blackbox.pid])
    for proc in (blackbox, probe, candidate):
        if proc:
            procs.stop(proc)
    return {
        "candidate": str(settings.candidate_dir) if candidate else None,
        "limits_env": limits,
        "tcp": tcp,
        "dns": dns,
        "validation": checks,
        "validation_concurrency": top,
        "blackbox_conf": bb_conf,
        "blackbox_argv": " ".join(bb_argv).replace(str(work), "$DIR"),
        "probe_env": " ".join(f"{k}={v}" for k, v in pr_env.items()
                              if k not in ("PATH", "HOME", "LANG", "TMPDIR"))
        .replace(targets.dns, "127.0.0.1:DNSPORT").replace(str(pr_port), "PORT"),
        "targets": {"dns": "127.0.0.1:DNSPORT (hickory-server, the lab's public zone)",
                    "tcp": "127.0.0.1:TCPPORT (accepts, holds until the peer closes)"},
    }


# --------------------------------------------------------------------------------------------
# section 3: start-up and footprint


def startup_measure(bins: Path, name: str, argv: list[str], env: dict[str, str],
                    settings: Settings, workdir: Path) -> dict:
    cmd = [str(bins / "lockdown-bench"), "startup", "--runs", str(settings.startup_runs),
           "--settle-ms", "100" if settings.quick else "300",
           "--log", str(workdir / f"startup-{name}.log")]
    for k, v in env.items():
        cmd += ["--env", f"{k}={v}"]
    cmd += ["--", *argv]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         timeout=60 + settings.startup_runs * 20, env=base_env())
    if out.returncode != 0:
        raise Failure(f"start-up of {name} failed: {out.stderr.strip()}")
    data = json.loads(out.stdout)
    return data | {
        "median_ms": median(data["ready_ms"]),
        "min_ms": min(data["ready_ms"]),
        "max_ms": max(data["ready_ms"]),
        "rss_ready_median_kb": median(data["rss_ready_kb"]),
        "rss_idle_median_kb": median(data["rss_idle_kb"]),
    }


def elf_stripped(path: Path) -> bool | None:
    if shutil.which("readelf") is None:
        return None
    out = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True)
    return ".symtab" not in out.stdout


def section_startup(procs: Procs, tools: dict, bins: Path, targets: Targets,
                    settings: Settings) -> dict:
    log("startup: exec -> first 200 on /healthz, RSS, sizes")
    work = procs.workdir / "startup"
    work.mkdir()
    data_dir = work / "data"
    seeder, port = start_backend(procs, bins, data_dir, targets.dns, name="seed-backend")
    seed_items(port)
    procs.stop(seeder)

    env_common = {"DNS_SERVERS": targets.dns, "LOG_FORMAT": "text"}
    runs = {
        "backend": ([str(bins / "backend")],
                    env_common | {"API_KEYS": API_KEY, "DATA_DIR": str(data_dir)}),
        "frontend": ([str(bins / "frontend")],
                     env_common | {"BACKEND_URL": "http://127.0.0.1:9",
                                   "BACKEND_API_KEY": API_KEY, "DIAG_TOKEN": DIAG_TOKEN}),
        "probe serve": ([str(bins / "probe"), "serve"],
                        env_common | {"DIAG_TOKEN": DIAG_TOKEN, "DIAG_ALLOW": "127.0.0.0/8"}),
    }
    result: dict = {"runs": settings.startup_runs, "binaries": {}, "sizes": {}}
    for name, (argv, env) in runs.items():
        result["binaries"][name] = startup_measure(bins, name.replace(" ", "-"), argv, env,
                                                   settings, work)
        b = result["binaries"][name]
        log(f"  {name:<12} median {b['median_ms']:.1f} ms (min {b['min_ms']:.1f}, "
            f"max {b['max_ms']:.1f}); RSS idle {b['rss_idle_median_kb'] / 1024:.1f} MB")
    for name in ("backend", "frontend", "probe"):
        path = bins / name
        result["sizes"][name] = {"bytes": path.stat().st_size, "stripped": elf_stripped(path)}
    for tool in ("nginx", "prometheus-blackbox-exporter"):
        path = Path(tools[tool])
        result["sizes"][tool] = {"bytes": path.stat().st_size, "stripped": elf_stripped(path)}
    result["image"] = image_size(settings) if settings.image else {
        "skipped": "--quick or --no-image: the image needs a static build and podman"}
    return result


def image_size(settings: Settings) -> dict:
    """Runs infra/checks/image.sh (static build + podman build of the runtime stage)."""
    log("  runtime image: infra/checks/image.sh (static release build + podman)")
    if shutil.which("podman") is None:
        return {"skipped": "podman is not installed (apt-get install -y podman buildah runc)"}
    try:
        out = subprocess.run(["bash", str(REPO / "infra/checks/image.sh")], cwd=REPO,
                             capture_output=True, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        return {"skipped": "infra/checks/image.sh took more than an hour"}
    text = out.stdout + out.stderr
    m = re.search(r"image size: ([\d.]+) MB \((\d+) bytes\)", text)
    static = target_dir() / "x86_64-unknown-linux-gnu" / "release"
    sizes = {n: (static / n).stat().st_size for n in ("frontend", "backend", "probe")
             if (static / n).exists()}
    if out.returncode != 0 or not m:
        return {"skipped": "infra/checks/image.sh failed: "
                + " | ".join(text.strip().splitlines()[-4:]), "static_sizes": sizes}
    return {"bytes": int(m.group(2)), "static_sizes": sizes,
            "command": "bash infra/checks/image.sh"}


# --------------------------------------------------------------------------------------------
# section 4: smoke suites


def section_smoke(bins: Path, settings: Settings) -> dict:
    log("smoke: the lab's default suite, 20 passing checks, a suite with timeouts")
    cmd = [str(bins / "lockdown-bench"), "smoke", "--rounds", str(settings.smoke_rounds),
           "--pause-ms", str(settings.smoke_pause_ms)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=base_env(),
                         timeout=120 + settings.smoke_rounds * 30)
    if out.returncode != 0:
        raise Failure(f"lockdown-bench smoke failed: {out.stderr.strip()}")
    data = json.loads(out.stdout)
    for name, suite in data["suites"].items():
        walls = [r["wall_ms"] for r in suite["runs"]]
        suite["median_wall_ms"] = median(walls)
        suite["min_wall_ms"] = min(walls)
        suite["max_wall_ms"] = max(walls)
        suite["median_sum_of_checks_ms"] = median([r["sum_of_checks_ms"] for r in suite["runs"]])
        suite["all_runs_as_expected"] = all(
            (r["failed"] == 0) if name != "timeouts" else (r["failed"] == 5)
            for r in suite["runs"])
        log(f"  {name:<9} {suite['checks']:>2} checks: median {suite['median_wall_ms']:.0f} ms "
            f"(sum of check times {suite['median_sum_of_checks_ms']:.0f} ms)")
    data["command"] = " ".join(cmd[1:]).replace(str(bins), "")
    return data


# --------------------------------------------------------------------------------------------
# section 5: smoke at scale


def section_scale(bins: Path, settings: Settings) -> dict:
    log("scale: generated suites × instances per app, every result verified")
    runs = []
    for instances in settings.scale_instances:
        for checks in settings.scale_checks:
            cmd = [str(bins / "lockdown-bench"), "scale", "--checks", str(checks),
                   "--instances", str(instances)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=base_env(),
                                 timeout=900)
            if out.returncode != 0:
                raise Failure(f"lockdown-bench scale failed: {out.stderr.strip()[-2000:]}")
            run = json.loads(out.stdout)
            runs.append(run)
            log(f"  {checks:>5} checks × {instances:>3} instances: {run['wall_ms']:,.0f} ms, "
                f"{run['passed']}/{run['results']} passed, verified {run['verified']}, "
                f"peak RSS {run['peak_rss_kb'] / 1024:.0f} MB")
    return {"runs": runs}


# --------------------------------------------------------------------------------------------
# section 6: under load (1,000 connections)


def wrk_statuses(tools: dict, url: str, conns: int, seconds: int,
                 headers: dict[str, str]) -> dict:
    """wrk with a Lua script that counts answers by status and notes Retry-After."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text("""
counts, retry = {}, 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {}; retry = 0 end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if headers["Retry-After"] or headers["retry-after"] then retry = retry + 1 end
end
function done(summary, latency, requests)
  local total, with_retry = {}, 0
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for s, n in pairs(c) do total[s] = (total[s] or 0) + n end
    with_retry = with_retry + t:get("retry")
  end
  for s, n in pairs(total) do io.write(string.format("STATUS %d %d\\n", s, n)) end
  io.write(string.format("RETRYAFTER %d\\n", with_retry))
end
""")
    argv = wrk_argv(tools["wrk"], url, conns, seconds, headers, script)
    try:
        result, text = run_wrk(argv, seconds)
    finally:
        script.unlink(missing_ok=True)
    out = dataclasses.asdict(result)
    out["statuses"] = {int(a): int(b) for a, b in re.findall(r"STATUS (\d+) (\d+)", text)}
    m = re.search(r"RETRYAFTER (\d+)", text)
    out["with_retry_after"] = int(m.group(1)) if m else 0
    return out


def status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def section_load(procs: Procs, tools: dict, bins: Path, targets: Targets,
                 settings: Settings) -> dict:
    log("load: the relay and /diag under 1,000 connections")
    work = procs.workdir / "load"
    work.mkdir()
    backend, be_port = start_backend(procs, bins, work / "data", targets.dns)
    seed_items(be_port)
    fe_port = free_port()
    token = "bench-diag-token"
    fe_env = base_env() | {
        "LISTEN_ADDR": f"{LOOPBACK}:{fe_port}",
        "BACKEND_URL": f"http://{LOOPBACK}:{be_port}",
        "BACKEND_API_KEY": API_KEY,
        "DNS_SERVERS": targets.dns,
        "DIAG_TOKEN": token,
        "DIAG_ALLOW": "127.0.0.0/8",
    }
    frontend = procs.start("frontend", [str(bins / "frontend")], fe_env)
    wait_ready(procs, "frontend", frontend, fe_port)
    seconds = 2 if settings.quick else 10
    conns = 200 if settings.quick else 1000
    out: dict = {"connections": conns, "seconds": seconds,
                 "rss_idle_kb": status_kb(frontend.pid, "VmRSS")}
    sink_host, sink_port = targets.tcp.rsplit(":", 1)
    runs = [
        ("relay", f"http://{LOOPBACK}:{fe_port}/api/items", {}),
        ("diag", f"http://{LOOPBACK}:{fe_port}/diag/tcpping?host={sink_host}&port={sink_port}"
                 "&count=1", {"Authorization": f"Bearer {token}"}),
    ]
    for name, url, headers in runs:
        result = wrk_statuses(tools, url, conns, seconds, headers)
        result["rss_after_kb"] = status_kb(frontend.pid, "VmRSS")
        out[name] = result
        log(f"  {name}: {fmt(result['rps'])} req/s, p99 {fmt(result['p99_ms'], 1)} ms, "
            f"statuses {result['statuses']}, Retry-After on {result['with_retry_after']}, "
            f"socket errors {result['socket_errors']}")
    out["rss_peak_kb"] = status_kb(frontend.pid, "VmHWM")
    time.sleep(1)
    out["rss_end_kb"] = status_kb(frontend.pid, "VmRSS")
    for proc in (frontend, backend):
        procs.stop(proc)
    return out


# --------------------------------------------------------------------------------------------
# the report


def fmt(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return (a / b) if a is not None and b else None


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("**met**" if ok else "**missed**")


def targets_table(res: dict) -> list[tuple[str, str, str, bool | None]]:
    """(what, figure, target, met) for every target of the issue."""
    rows = []
    relay = res.get("relay")
    if relay:
        for c, by in relay["by_concurrency"].items():
            r, n = by["relay"], by["nginx"]
            q = ratio(r["rps"], n["rps"])
            rows.append((f"relay req/s vs nginx, c={c}",
                         f"{fmt(r['rps'])} / {fmt(n['rps'])} = **{fmt(q, 2)}×**", "≥ 1.0×",
                         None if q is None else q >= 1.0))
            q = ratio(r["p99_ms"], n["p99_ms"])
            rows.append((f"relay p99 vs nginx, c={c}",
                         f"{fmt(r['p99_ms'], 2)} / {fmt(n['p99_ms'], 2)} ms = **{fmt(q, 2)}×**",
                         "≤ 1.2×", None if q is None else q <= 1.2))
            if "backend_pg" in by:
                # A figure, not a target: what the real database costs the ceiling.
                p, e = by["backend_pg"], by["backend"]
                q = ratio(p["rps"], e["rps"])
                rows.append((f"back end req/s, PostgreSQL vs embedded, c={c}",
                             f"{fmt(p['rps'])} / {fmt(e['rps'])} = **{fmt(q, 2)}×**", "—",
                             None))
    probe = res.get("probe")
    if probe:
        for kind, ours, theirs in (("tcp", "tcpping", "bb_tcp"), ("dns", "resolve", "bb_dns")):
            for c, by in probe[kind]["by_concurrency"].items():
                a, b = by[ours], by[theirs]
                q = ratio(a["rps"], b["rps"])
                rows.append((f"/diag/{ours} req/s vs blackbox, c={c}",
                             f"{fmt(a['rps'])} / {fmt(b['rps'])} = **{fmt(q, 2)}×**", "≥ 1.5×",
                             None if q is None else q >= 1.5))
                q = ratio(a["p99_ms"], b["p99_ms"])
                rows.append((f"/diag/{ours} p99 vs blackbox, c={c}",
                             f"{fmt(a['p99_ms'], 2)} / {fmt(b['p99_ms'], 2)} ms = "
                             f"**{fmt(q, 2)}×**", "≤ 1.0×", None if q is None else q <= 1.0))
    startup = res.get("startup")
    if startup:
        for name, b in startup["binaries"].items():
            rows.append((f"start-up to first 200, {name}", f"{fmt(b['median_ms'], 1)} ms median",
                         "≤ 50 ms", b["median_ms"] <= 50))
        for name, b in startup["binaries"].items():
            mb = b["rss_idle_median_kb"] / 1024
            rows.append((f"idle RSS, {name}", f"{fmt(mb, 1)} MB", "≤ 20 MB", mb <= 20))
    smoke = res.get("smoke")
    if smoke:
        s = smoke["suites"]["twenty"]
        rows.append(("20-check passing suite", f"{fmt(s['median_wall_ms'])} ms median", "< 1 s",
                     s["median_wall_ms"] < 1000 and s["all_runs_as_expected"]))
        s = smoke["suites"]["timeouts"]
        q = s["median_wall_ms"] / s["longest_timeout_ms"]
        rows.append(("suite with timeouts vs its longest timeout",
                     f"{fmt(s['median_wall_ms'])} / {s['longest_timeout_ms']} ms = "
                     f"**{fmt(q, 2)}×**", "≤ 1.2×", q <= 1.2))
    scale = res.get("scale")
    if scale:
        big = [r for r in scale["runs"] if r["checks"] == 1000 and r["instances"] == 100]
        if big:
            r = big[0]
            rows.append(("1,000 checks × 100 instances",
                         f"{fmt(r['wall_ms'])} ms, peak RSS {fmt(r['peak_rss_kb'] / 1024)} MB",
                         "< 10 s", r["wall_ms"] < 10_000 and r["verified"]))
        rows.append(("scale runs: no result lost or mixed up between instances",
                     f"{sum(r['verified'] for r in scale['runs'])} of {len(scale['runs'])} "
                     "runs verified", "all", all(r["verified"] for r in scale["runs"])))
    load = res.get("load")
    if load:
        for name in ("relay", "diag"):
            r = load[name]
            refused = sum(n for s, n in r["statuses"].items() if int(s) >= 400)
            other = sum(n for s, n in r["statuses"].items()
                        if int(s) >= 400 and int(s) not in (429, 503))
            rows.append((f"{name} under {load['connections']:,} connections",
                         f"p99 {fmt(r['p99_ms'], 0)} ms; {fmt(refused)} refused, "
                         f"{fmt(r['with_retry_after'])} with Retry-After",
                         "p99 < 1 s; refusals 429/503 with Retry-After",
                         r["p99_ms"] < 1000 and other == 0 and r["with_retry_after"] >= refused))
    return rows


def write_report(res: dict, settings: Settings, path: Path) -> None:
    m = res["machine"]
    L: list[str] = []
    w = L.append
    w("# Benchmarks\n")
    if settings.quick:
        w("> **--quick run**: tiny durations to prove the harness works. These figures mean "
          "nothing; see the full run.\n")
    w(f"One run of `bash bench/run{' ' + ' '.join(settings.argv) if settings.argv else ''}` "
      f"on {m['date']}, commit `{m['git']}`"
      + (f" with uncommitted changes in {', '.join(sorted({l[3:] for l in m['dirty']}))}"
         if m["dirty"] else "") + ". Every figure below comes from this one run on this one "
      "machine: ratios are computed within the run, each figure is the median of "
      f"{settings.rounds} alternating rounds (A, B, A, B …) of {settings.duration_s:g} s, never "
      "compared with absolute numbers from another run. The full harness and how to run it: "
      "[`bench/README.md`](bench/README.md).\n")
    w("## Targets\n")
    w("| what | figure (lockdown / peer) | target | |")
    w("|---|---|---|---|")
    for what, figure, target, ok in targets_table(res):
        w(f"| {what} | {figure} | {target} | {verdict(ok)} |")
    w("")
    took = ", ".join(f"{k} {v} s" for k, v in res.get("section_s", {}).items())
    w(f"Run time {res.get('elapsed_s', 0):.0f} s ({took}).\n")
    w("## Machine\n")
    w(f"- CPU: {m['cpu']}, `nproc` = {m['nproc']} — **shared by wrk, the proxy and the back "
      "end**; nothing is pinned (two cores cannot be split fairly between three programs), so "
      "both sides of every comparison run under identical conditions, one after the other.")
    w(f"- Kernel {m['kernel']}, {m['os']}; load average at the start {m['load']}, at the end "
      f"{m.get('load_end', '?')} (the machine is shared: other builds may run during a round, "
      "which is why every figure is a median of alternating rounds)")
    w("- Memory (`free -h`):\n\n```\n" + m["memory"] + "\n```")
    v = m["versions"]
    w(f"- {v['nginx']}; {v['wrk']}; {v['blackbox_exporter']}; {v['rustc']}; Python "
      f"{v['python']}\n")
    if "relay" in res:
        relay_report(w, res["relay"], settings)
    if "probe" in res:
        probe_report(w, res["probe"], settings)
    if "startup" in res:
        startup_report(w, res["startup"], res.get("footprint", {}))

    if "smoke" in res:
        smoke_report(w, res["smoke"])
    if "scale" in res:
        scale_report(w, res["scale"])
    if "load" in res:
        load_report(w, res["load"])
    if settings.notes and settings.notes.exists():
        w("## Notes\n")
        w(settings.notes.read_text().strip() + "\n")
    if res.get("failures"):
        w("## Sections that did not run\n")
        for name, why in res["failures"].items():
            w(f"- **{name}**: {why}")
        w("")
    path.write_text("\n".join(L) + "\n")


def comparison_table(w, result: dict, order: list[tuple[str, str]], base: str) -> None:
    name = dict(order)[base]
    w("| c | side | req/s (median) | req/s range | p50 ms | p99 ms | CPU µs/req user + sys | "
      f"req/s ÷ {name} | p99 ÷ {name} |")
    w("|---|---|---|---|---|---|---|---|---|")
    for c, by in result["by_concurrency"].items():
        for key, label in order:
            s = by[key]
            flags = ""
            if s["non_2xx"] or s["socket_errors"]:
                flags = f" ⚠ non-2xx {s['non_2xx']}, socket errors {s['socket_errors']}"
            w(f"| {c} | {label}{flags} | {fmt(s['rps'])} | {fmt(s['rps_min'])}–"
              f"{fmt(s['rps_max'])} | {fmt(s['p50_ms'], 2)} | {fmt(s['p99_ms'], 2)} | "
              f"{fmt(s['user_us_per_req'])} + {fmt(s['sys_us_per_req'])} | "
              f"{fmt(ratio(s['rps'], by[base]['rps']), 2)} | "
              f"{fmt(ratio(s['p99_ms'], by[base]['p99_ms']), 2)} |")
    w("")


def rounds_details(w, result: dict, order: list[tuple[str, str]]) -> None:
    w("<details><summary>every round</summary>\n")
    w("| c | side | round | req/s | p50 ms | p99 ms | requests |")
    w("|---|---|---|---|---|---|---|")
    for c, by in result["by_concurrency"].items():
        for key, label in order:
            for row in by[key]["rounds"]:
                w(f"| {c} | {label} | {row['round'] + 1} | {fmt(row['rps'])} | "
                  f"{fmt(row['p50_ms'], 2)} | {fmt(row['p99_ms'], 2)} | {row['requests']} |")
    w("\n</details>\n")


def relay_report(w, r: dict, settings: Settings) -> None:
    w("## 1. BFF relay vs nginx\n")
    w(f"`GET /api/items` ({ITEMS} items, {r['body_bytes']} bytes of JSON) through the front "
      "end's relay and through nginx `proxy_pass` with upstream keep-alive, both in front of the "
      "same back end process; the back end alone is the ceiling. `CPU µs/req` is the user and "
      "system CPU time of the serving process(es) alone — the proxy's for the relay and nginx "
      "(not the back end's), the back end's for the ceiling — from `/proc/PID/stat` over the "
      "round, divided by its requests: the cost of one request, which on two shared cores is "
      "what sets the rate.\n")
    order = [("relay", "lockdown relay"), ("nginx", "nginx"), ("backend", "back end alone")]
    if r.get("candidate"):
        order.insert(1, ("relay_candidate", "lockdown relay, candidate build ¹"))
    if r.get("postgres"):
        order += [("relay_pg", "lockdown relay, back end on PostgreSQL ²"),
                  ("backend_pg", "back end on PostgreSQL alone ²")]
    comparison_table(w, r, order, "nginx")
    if r.get("candidate"):
        w("¹ Built from a patched copy of the tree (the fixes proposed in the notes), measured "
          "in the same rounds; the targets above use the unpatched build.\n")
    if r.get("postgres"):
        w(f"² The same back end with `DATABASE_URL` set: PostgreSQL {r['postgres']} (Debian's, a "
          "throw-away cluster on loopback, fsync on), reached by its `privatelink` name with TLS "
          "verify-full, a pool of 10; its own relay in front. The embedded rows are redb. Both "
          "serve the same items; the difference is the cost of the real database.\n")
    rounds_details(w, r, order)
    w("Commands (ports are picked per run; `-t1` at c=1 because wrk needs a connection per "
      "thread):\n")
    w("```sh")
    w(f"backend:  {r['env']['backend']} backend")
    w(f"frontend: {r['env']['frontend']} frontend")
    w(f"nginx:    {r['nginx_argv']}")
    for key, cmd in r["commands"].items():
        w(f"wrk ({key}): {cmd}")
    w("```\n")
    w("<details><summary>nginx.conf</summary>\n\n```nginx\n" + r["nginx_conf"] + "```\n"
      "</details>\n")


def probe_report(w, p: dict, settings: Settings) -> None:
    w("## 2. Probe vs blackbox_exporter\n")
    if not p["limits_env"]:
        w("> ⚠ This `probe` has no `DIAG_CONCURRENCY` / `DIAG_BURST` / `DIAG_RATE_PER_S`: its "
          "`/diag` bounds answered most requests 429/503, so the figures below measure the "
          "limiter, not the probe.\n")
    w("Both probers target the same loopback TCP sink and ask the same loopback DNS server "
      "(hickory-server serving the lab's public zone; `A` of "
      f"`{'app-be.azurewebsites.net'}`). `/diag/resolve` is asked with `type=A` so it sends one "
      "query, as blackbox's module does (its default `A+AAAA` sends two). `server=` names the "
      "DNS server in the request, as blackbox's `target=` does; the `DNS_SERVERS` row uses the "
      "resolver the probe built at start-up instead. The probe's `/diag` bounds are lifted for "
      "the load test (`DIAG_CONCURRENCY`, `DIAG_BURST`, `DIAG_RATE_PER_S`).\n")
    w("### tcpping vs blackbox tcp_connect\n")
    order = [("tcpping", "/diag/tcpping count=1"), ("bb_tcp", "blackbox")]
    if p.get("candidate"):
        order.append(("tcpping_candidate", "/diag/tcpping, candidate build ¹"))
    comparison_table(w, p["tcp"], order, "bb_tcp")
    rounds_details(w, p["tcp"], order)
    w("### resolve vs blackbox dns\n")
    order = [("resolve", "/diag/resolve server="), ("bb_dns", "blackbox"),
             ("resolve_cfg", "/diag/resolve (DNS_SERVERS)")]
    if p.get("candidate"):
        order.append(("resolve_candidate", "/diag/resolve server=, candidate build ¹"))
    comparison_table(w, p["dns"], order, "bb_dns")
    if p.get("candidate"):
        w("¹ Built from a patched copy of the tree (the fixes proposed in the notes), measured "
          "in the same rounds; the targets above use the unpatched build.\n")
    rounds_details(w, p["dns"], order)
    w(f"Validation (a separate wrk run at c={p['validation_concurrency']} whose Lua hook reads "
      "every body): answers that were not a successful probe —")
    for key, v in p["validation"].items():
        w(f"- `{key}`: {v['failed']} of {v['total']} (success marker `{v['marker']}`)")
    w("\nCommands:\n")
    w("```sh")
    w(f"probe:    {p['probe_env']} probe serve")
    w(f"blackbox: {p['blackbox_argv']}")
    for part in ("tcp", "dns"):
        for key, cmd in p[part]["commands"].items():
            w(f"wrk ({key}): {cmd}")
    w("```\n")
    w("<details><summary>blackbox.yml</summary>\n\n```yaml\n" + p["blackbox_conf"] + "```\n"
      "</details>\n")


def startup_report(w, s: dict, footprint: dict) -> None:
    w("## 3. Start-up and footprint\n")
    w(f"Exec → first `200` on `GET /healthz`, {s['runs']} starts per binary "
      "(`lockdown-bench startup`: spawn, then a connect attempt every 100 µs; each start on a "
      "fresh port; stopped with SIGTERM). RSS is `VmRSS` from `/proc/PID/status` at the first "
      "200 and after 300 ms idle.\n")
    w("| binary | median ms | min ms | max ms | RSS at first 200 | RSS idle |")
    w("|---|---|---|---|---|---|")
    for name, b in s["binaries"].items():
        w(f"| `{name}` | {fmt(b['median_ms'], 1)} | {fmt(b['min_ms'], 1)} | "
          f"{fmt(b['max_ms'], 1)} | {fmt(b['rss_ready_median_kb'] / 1024, 1)} MB | "
          f"{fmt(b['rss_idle_median_kb'] / 1024, 1)} MB |")
    w("")
    if footprint:
        w("Long-running processes of sections 1 and 2 (VmRSS; nginx: master + workers):\n")
        w("| process | idle, before load | after the load runs |")
        w("|---|---|---|")
        for name in footprint.get("idle_rss_kb", {}):
            idle = footprint["idle_rss_kb"].get(name)
            loaded = footprint.get("loaded_rss_kb", {}).get(name)
            w(f"| {name} | {fmt(idle / 1024 if idle else None, 1)} MB | "
              f"{fmt(loaded / 1024 if loaded else None, 1)} MB |")
        w("")
    w("Binary sizes (release profile: `strip = \"symbols\"`, thin LTO):\n")
    w("| binary | size | stripped |")
    w("|---|---|---|")
    for name, b in s["sizes"].items():
        w(f"| `{name}` | {fmt(b['bytes'] / 1e6, 1)} MB | "
          f"{'yes' if b['stripped'] else ('no' if b['stripped'] is False else '?')} |")
    w("")
    image = s.get("image", {})
    if "bytes" in image:
        w(f"Runtime image (`{image['command']}`: static-pie binaries, `FROM scratch`, CA bundle): "
          f"**{fmt(image['bytes'] / 1e6, 1)} MB**. Static binaries: "
          + ", ".join(f"`{k}` {v / 1e6:.1f} MB" for k, v in image.get("static_sizes", {}).items())
          + ".\n")
    else:
        w(f"Runtime image: not measured — {image.get('skipped', '?')}.\n")


def smoke_report(w, s: dict) -> None:
    w("## 4. The smoke suite\n")
    w("The lab runs in-process (`lockdown::Lab`, service-endpoint mode, two instances per app); "
      "the clock runs around `probe::smoke::run` alone, so the lab's start-up "
      f"({fmt(s['lab_start_ms'])} ms) is not counted. Suites alternate round by round, with a "
      "pause between runs so the front end's `/diag` rate bucket refills.\n")
    w("| suite | checks (results) | median wall ms | min–max | sum of check times (median) "
      "| as expected |")
    w("|---|---|---|---|---|---|")
    names = {"default": "the lab's default suite", "twenty": "20 passing checks",
             "timeouts": "5 checks time out (longest 1000 ms) + 5 pass"}
    for key, suite in s["suites"].items():
        w(f"| {names.get(key, key)} | {suite['checks']} ({suite['runs'][0]['units']}) | "
          f"{fmt(suite['median_wall_ms'])} | "
          f"{fmt(suite['min_wall_ms'])}–{fmt(suite['max_wall_ms'])} | "
          f"{fmt(suite['median_sum_of_checks_ms'])} | "
          f"{'yes' if suite['all_runs_as_expected'] else 'NO'} |")
    w("")
    w(f"Command: `lockdown-bench {s['command'].strip()}` (suites generated in "
      "`bench/src/smoke.rs`).\n")


# --------------------------------------------------------------------------------------------


def scale_report(w, s: dict) -> None:
    w("## 5. Smoke at scale\n")
    w("The lab in-process (`lockdown::Lab`, service-endpoint mode) with N instances of each app; "
      "a generated suite of C checks (`lockdown::suite::scale_suite`), check *k* pinned to the "
      "front end's instance *k* mod N (`instances = [id]`), in turn a tcpping of the back end, "
      "an HTTP call to it and a lookup of its name, all through that instance's `/diag` behind "
      "the App Service emulator. The clock runs around `probe::smoke::run` alone; one process "
      "per cell, so *peak RSS* (`VmHWM`: the lab's 2 × N apps and the runner together) is that "
      "cell's own. **Verified** = `lockdown::suite::verify_scale`: one result per check, none "
      "lost or repeated, each passed, pinned to and answered by its own instance (`X-Instance-Id`), "
      "and every tcpping left from that instance's own address in the integration subnet.\n")
    instances = sorted({r["instances"] for r in s["runs"]})
    checks = sorted({r["checks"] for r in s["runs"]})
    by = {(r["checks"], r["instances"]): r for r in s["runs"]}
    w("Wall time of the suite (ms):\n")
    w("| checks \\ instances per app | " + " | ".join(str(i) for i in instances) + " |")
    w("|---|" + "---|" * len(instances))
    for c in checks:
        cells = []
        for i in instances:
            r = by.get((c, i))
            cells.append("–" if not r else f"{fmt(r['wall_ms'])}" + ("" if r["verified"] else " ⚠"))
        w(f"| {c:,} | " + " | ".join(cells) + " |")
    w("")
    w("| checks | instances | wall ms | results passed | verified | longest check ms | lab start ms | "
      "RSS after lab start MB | peak RSS MB |")
    w("|---|---|---|---|---|---|---|---|---|")
    for r in s["runs"]:
        w(f"| {r['checks']:,} | {r['instances']} | {fmt(r['wall_ms'])} | "
          f"{r['passed']}/{r['results']} | {'yes' if r['verified'] else 'NO: ' + str(r['verify_error'])} | "
          f"{fmt(r['longest_check_ms'])} | {fmt(r['lab_start_ms'])} | "
          f"{fmt((r['rss_after_lab_start_kb'] or 0) / 1024, 1)} | {fmt(r['peak_rss_kb'] / 1024, 1)} |")
    w("")
    w("Command: `lockdown-bench scale --checks C --instances N` per cell.\n")


def load_report(w, s: dict) -> None:
    w(f"## 6. Under load: {s['connections']:,} connections\n")
    w(f"The front end (release build, default limits: `RELAY_MAX_IN_FLIGHT` 256, "
      f"`RELAY_QUEUE_TIMEOUT_MS` 100; `/diag` 8 at once, burst 30, 5/s) in front of the back "
      f"end, wrk `-t2 -c{s['connections']}` for {s['seconds']} s on each path, a Lua script "
      "counting answers by status and those carrying `Retry-After`.\n")
    w("| path | req/s | p50 ms | p99 ms | answers by status | with Retry-After | socket errors |")
    w("|---|---|---|---|---|---|---|")
    for name, label in (("relay", "`GET /api/items` (relay)"),
                        ("diag", "`GET /diag/tcpping` (count=1)")):
        r = s[name]
        statuses = ", ".join(f"{k}: {fmt(v)}" for k, v in sorted(r["statuses"].items()))
        w(f"| {label} | {fmt(r['rps'])} | {fmt(r['p50_ms'], 2)} | {fmt(r['p99_ms'], 2)} | "
          f"{statuses} | {fmt(r['with_retry_after'])} | {r['socket_errors']} |")
    w("")
    kb = lambda v: "–" if v is None else f"{v / 1024:.1f} MB"
    w(f"Front-end RSS: idle {kb(s.get('rss_idle_kb'))}, after the relay run "
      f"{kb(s['relay'].get('rss_after_kb'))}, after the /diag run {kb(s['diag'].get('rss_after_kb'))}, "
      f"peak {kb(s.get('rss_peak_kb'))}, 1 s later {kb(s.get('rss_end_kb'))}.\n")


def render_again(settings: Settings) -> int:
    res = json.loads(settings.from_json.read_text())
    saved = res["settings"]
    for key in ("quick", "rounds", "duration_s", "argv"):
        setattr(settings, key, saved[key])
    write_report(res, settings, settings.out)
    log(f"wrote {settings.out} from {settings.from_json}")
    return 0


def main(argv: list[str]) -> int:
    settings = parse_args(argv)
    if settings.from_json:
        return render_again(settings)
    started = time.monotonic()
    tools = ensure_peers(settings)
    bins = build(settings)
    workdir = Path(tempfile.mkdtemp(prefix="lockdown-bench-"))
    procs = Procs(workdir)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    res: dict = {"machine": machine(tools), "failures": {}, "footprint": {}}
    failed = False
    try:
        targets = start_targets(procs, bins)
        log(f"targets: DNS {targets.dns}, TCP sink {targets.tcp} (work dir {workdir})")
        sections = {
            "relay": lambda: section_relay(procs, tools, bins, targets, settings,
                                           res["footprint"]),
            "probe": lambda: section_probe(procs, tools, bins, targets, settings,
                                           res["footprint"]),
            "startup": lambda: section_startup(procs, tools, bins, targets, settings),
            "smoke": lambda: section_smoke(bins, settings),
            "scale": lambda: section_scale(bins, settings),
            "load": lambda: section_load(procs, tools, bins, targets, settings),
        }
        for name in ("relay", "probe", "startup", "smoke", "scale", "load"):
            if name not in settings.sections:
                continue
            began = time.monotonic()
            try:
                res[name] = sections[name]()
                res.setdefault("section_s", {})[name] = round(time.monotonic() - began)
            except (Failure, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as error:
                failed = True
                res["failures"][name] = str(error)
                log(f"!! {name} did not run: {error}")
                for proc_name, proc in list(procs.running):
                    if proc_name != "targets":
                        procs.stop(proc)
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    res["elapsed_s"] = time.monotonic() - started
    res["settings"] = {"quick": settings.quick, "rounds": settings.rounds,
                       "duration_s": settings.duration_s, "argv": settings.argv}
    res["machine"]["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    settings.out.parent.mkdir(parents=True, exist_ok=True)
    write_report(res, settings, settings.out)
    if settings.json_out:
        settings.json_out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    log(f"wrote {settings.out} in {res['elapsed_s']:.0f} s")
    for what, figure, target, ok in targets_table(res):
        log(f"  {'ok  ' if ok else ('–   ' if ok is None else 'MISS')} {what}: {figure.replace('**', '')} (target {target})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
