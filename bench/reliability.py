#!/usr/bin/env python3
"""lockdown's reliability scenarios (issue 18) against built binaries, loopback only.

Each scenario is bounded; it measures a defect the issue named and says whether it reproduces:
slow and idle clients, the connection cap, logs during a back-end outage and a /diag flood,
SIGTERM with a request in flight, a second back end on the same DATA_DIR. The process helpers
come from bench.py (same process handling, clean environment, loopback checks).

    bash bench/reliability --quick                      # CI: the current release build, ~1 min
    bash bench/reliability --bins DIR --label after --json OUT.json
    bash bench/reliability --report BEFORE.json AFTER.json   # writes RELIABILITY.md's table
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as B  # noqa: E402  (bench.py's helpers: Procs, base_env, free_port, wait_ready …)

LOOPBACK = B.LOOPBACK


def log(message: str) -> None:
    print(f"reliability: {message}", file=sys.stderr, flush=True)


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    return B.free_port()


class Plan:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.clients = 50 if quick else 500
        self.header_timeout_ms = 1_000 if quick else 10_000
        self.outage_s = 3 if quick else 10
        self.flood_s = 3 if quick else 30
        self.cap = 40 if quick else 200
        self.load_connections = [200] if quick else [1_000, 5_000]
        self.load_s = 3 if quick else 10
        self.durability_rounds = 2 if quick else 10
        self.fuzz_requests = 300 if quick else 5_000


def limits_env(plan: Plan) -> dict[str, str]:
    # Ignored by binaries that predate the limits, so the same environment measures both.
    return {
        "HEADER_READ_TIMEOUT_MS": str(plan.header_timeout_ms),
        "IDLE_TIMEOUT_MS": str(plan.header_timeout_ms),
    }


def start_backend(procs: B.Procs, bins: Path, data_dir: Path, plan: Plan,
                  name: str = "backend", extra: dict | None = None):
    port = B.free_port()
    env = B.backend_env(data_dir, port, f"{LOOPBACK}:{closed_port()}") | limits_env(plan)
    env |= extra or {}
    proc = procs.start(name, [str(bins / "backend")], env)
    B.wait_ready(procs, name, proc, port)
    return proc, port


def start_frontend(procs: B.Procs, bins: Path, backend_url: str, plan: Plan,
                   name: str = "frontend", extra: dict | None = None):
    port = B.free_port()
    env = B.base_env() | limits_env(plan) | {
        "LISTEN_ADDR": f"{LOOPBACK}:{port}",
        "BACKEND_URL": backend_url,
        "BACKEND_API_KEY": B.API_KEY,
        # Never the system resolver: a closed loopback port.
        "DNS_SERVERS": f"{LOOPBACK}:{closed_port()}",
        "DIAG_TOKEN": B.DIAG_TOKEN,
        "DIAG_ALLOW": "127.0.0.0/8",
    } | (extra or {})
    proc = procs.start(name, [str(bins / "frontend")], env)
    B.wait_ready(procs, name, proc, port)
    return proc, port


def still_open(sockets: list[socket.socket]) -> int:
    """How many of these connections the server has not closed (a read would block)."""
    open_count = 0
    for s in sockets:
        s.setblocking(False)
        try:
            data = s.recv(1)
            if data:
                open_count += 1  # it answered something, but kept the connection
        except BlockingIOError:
            open_count += 1
        except OSError:
            pass
    return open_count


def scenario_slow_clients(procs: B.Procs, bins: Path, work: Path, plan: Plan) -> dict:
    _, port = start_backend(procs, bins, work / "data-slow", plan, name="backend-slow")
    slow, idle = [], []
    for _ in range(plan.clients):
        s = socket.create_connection((LOOPBACK, port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        slow.append(s)
    for _ in range(plan.clients):
        s = socket.create_connection((LOOPBACK, port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(4096)
        idle.append(s)
    wait_s = plan.header_timeout_ms / 1000 + 2
    time.sleep(wait_s)
    result = {
        "clients": plan.clients,
        "after_s": wait_s,
        "slowloris_open": still_open(slow),
        "idle_open": still_open(idle),
    }
    for s in slow + idle:
        s.close()
    return result


def scenario_connection_cap(procs: B.Procs, bins: Path, work: Path, plan: Plan) -> dict:
    _, port = start_backend(procs, bins, work / "data-cap", plan, name="backend-cap",
                            extra={"MAX_CONNECTIONS": str(plan.cap),
                                   "IDLE_TIMEOUT_MS": "60000",
                                   "HEADER_READ_TIMEOUT_MS": "60000"})
    # The readiness probe's connection holds a slot until the server has seen it close.
    time.sleep(0.3)
    held = []
    for _ in range(plan.cap + 20):
        s = socket.create_connection((LOOPBACK, port))
        held.append(s)
    time.sleep(0.3)
    refused = 0
    extra_answer_ms = None
    started = time.monotonic()
    try:
        status, body = B.http_get(port, "/healthz", timeout=3.0)
        extra_answer_ms = round((time.monotonic() - started) * 1000, 1)
        refused = int(status == 503 and b"too_many_connections" in body)
    except OSError:
        extra_answer_ms = None
    for s in held:
        s.close()
    return {"cap": plan.cap, "opened": len(held) + 1, "over_cap_503": refused,
            "over_cap_answer_ms": extra_answer_ms}


def hammer(port: int, path: str, seconds: float, threads: int = 8,
           headers: dict | None = None, until=lambda: False) -> dict[int, int]:
    """GETs on keep-alive connections from `threads` threads for `seconds` (or until `until()`):
    answers by status, 0 for a connection that failed or was cut."""
    import http.client

    counts: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run() -> None:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
        while time.monotonic() < deadline and not until():
            try:
                conn.request("GET", path, headers=headers or {})
                response = conn.getresponse()
                response.read()
                with lock:
                    counts[response.status] = counts.get(response.status, 0) + 1
            except (OSError, http.client.HTTPException):
                with lock:
                    counts[0] = counts.get(0, 0) + 1
                conn.close()
                conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
        conn.close()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return counts


def log_size(work: Path, name: str) -> int:
    path = work / f"{name}.log"
    return path.stat().st_size if path.exists() else 0


def scenario_outage_logs(procs: B.Procs, bins: Path, work: Path, plan: Plan) -> dict:
    dead = closed_port()
    _, port = start_frontend(procs, bins, f"http://{LOOPBACK}:{dead}", plan,
                             name="frontend-outage")
    before = log_size(work, "frontend-outage")
    counts = hammer(port, "/api/items", plan.outage_s)
    time.sleep(0.2)
    text = (work / "frontend-outage.log").read_text(errors="replace")
    lines = text.splitlines()
    return {
        "seconds": plan.outage_s,
        "requests": sum(counts.values()),
        "by_status": {str(k): v for k, v in sorted(counts.items())},
        "log_bytes": log_size(work, "frontend-outage") - before,
        "log_lines_naming_connect_refused": sum("connect_refused" in line for line in lines),
        "log_error_lines": sum(" ERROR " in line for line in lines),
    }


def scenario_diag_flood(procs: B.Procs, bins: Path, work: Path, plan: Plan) -> dict:
    _, port = start_frontend(procs, bins, f"http://{LOOPBACK}:{closed_port()}", plan,
                             name="frontend-flood")
    before = log_size(work, "frontend-flood")
    counts = hammer(port, "/diag/env", plan.flood_s,
                    headers={"Authorization": f"Bearer {B.DIAG_TOKEN}"})
    time.sleep(0.2)
    return {
        "seconds": plan.flood_s,
        "requests": sum(counts.values()),
        "by_status": {str(k): v for k, v in sorted(counts.items())},
        "log_bytes": log_size(work, "frontend-flood") - before,
    }


def scenario_sigterm_in_flight(procs: B.Procs, bins: Path, work: Path, plan: Plan) -> dict:
    """A relayed request hangs on a back end that never accepts (a listener whose accept queue
    is full); SIGTERM arrives; does the client get an HTTP answer, and when?"""
    stuck = socket.socket()
    stuck.bind((LOOPBACK, 0))
    stuck.listen(0)
    filler = socket.create_connection(stuck.getsockname())  # fills the queue
    proc, port = start_frontend(procs, bins, f"http://{LOOPBACK}:{stuck.getsockname()[1]}", plan,
                                name="frontend-sigterm",
                                extra={"BACKEND_TIMEOUT_MS": "30000",
                                       "REQUEST_TIMEOUT_MS": "60000"})
    outcome: dict = {}

    def call() -> None:
        started = time.monotonic()
        try:
            status, body = B.http_get(port, "/api/items", timeout=15)
            outcome["status"] = status
            try:
                outcome["code"] = json.loads(body)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                outcome["code"] = None
        except Exception as error:  # noqa: BLE001 - the failure is the measurement
            outcome["status"] = None
            outcome["error"] = type(error).__name__
        outcome["answered_after_s"] = round(time.monotonic() - started, 2)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.5)
    term_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    caller.join(timeout=20)
    try:
        proc.wait(timeout=10)
        outcome["exit_after_sigterm_s"] = round(time.monotonic() - term_at, 2)
    except subprocess.TimeoutExpired:
        outcome["exit_after_sigterm_s"] = None
    filler.close()
    stuck.close()
    return outcome


def scenario_data_dir(procs: B.Procs, bins: Path, work: Path, plan: Plan) -> dict:
    data = work / "data-shared"
    start_backend(procs, bins, data, plan, name="backend-first")
    env = B.backend_env(data, B.free_port(), f"{LOOPBACK}:{closed_port()}") | {
        "LOG_FORMAT": "json", "DATA_DIR_LOCK_WAIT_MS": "2000"}
    started = time.monotonic()
    second = subprocess.run([str(bins / "backend")], env=env, capture_output=True,
                            timeout=30, cwd=work)
    elapsed = round(time.monotonic() - started, 2)
    out = (second.stdout + second.stderr).decode(errors="replace")
    lines = [line for line in out.splitlines() if line.strip()]

    def is_json(line: str) -> bool:
        try:
            json.loads(line)
            return True
        except ValueError:
            return False

    return {
        "exit_code": second.returncode,
        "exited_after_s": elapsed,
        "output_lines": len(lines),
        "non_json_lines": sum(not is_json(line) for line in lines),
    }


WRK_STATUS_LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("status %d %d\n", k, v)) end
  local e = summary.errors
  io.write(string.format("socket_errors %d %d %d %d\n", e.connect, e.read, e.write, e.timeout))
  io.write(string.format("p99_ms %.2f\n", latency:percentile(99) / 1000))
  io.write(string.format("requests %d\n", summary.requests))
end
"""


def wrk_run(work: Path, port: int, path: str, connections: int, seconds: int,
            pids: list[int], headers: dict | None = None) -> dict:
    """wrk at `connections` for `seconds`: answers by status, socket errors, p99, and the RSS
    of `pids` (peak while loaded, then 3 s after)."""
    wrk = shutil.which("wrk")
    if not wrk:
        raise B.Failure("wrk is not installed (apt-get install wrk)")
    script = work / "status.lua"
    script.write_text(WRK_STATUS_LUA)
    argv = [wrk, "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
            "-s", str(script)]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(f"http://{LOOPBACK}:{port}{path}")
    peak = 0
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    while proc.poll() is None:
        peak = max(peak, B.rss_kb(pids))
        time.sleep(0.1)
    out = proc.stdout.read().decode(errors="replace")
    time.sleep(3)
    result: dict = {"connections": connections, "seconds": seconds, "by_status": {},
                    "rss_peak_mb": round(peak / 1024, 1),
                    "rss_after_mb": round(B.rss_kb(pids) / 1024, 1)}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("status "):
            result["by_status"][parts[1]] = int(parts[2])
        elif line.startswith("socket_errors "):
            result["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                               map(int, parts[1:5])))
        elif line.startswith("p99_ms "):
            result["p99_ms"] = float(parts[1])
        elif line.startswith("requests "):
            result["requests"] = int(parts[1])
    if "requests" not in result:
        raise B.Failure(f"wrk said:\n{out}")
    return result


def scenario_load(procs: B.Procs, bins: Path, work: Path, plan: Plan) -> dict:
    backend, backend_port = start_backend(procs, bins, work / "data-load", plan,
                                          name="backend-load")
    B.seed_items(backend_port)
    frontend, port = start_frontend(procs, bins, f"http://{LOOPBACK}:{backend_port}", plan,
                                    name="frontend-load")
    pids = [frontend.pid]
    results = {}
    for connections in plan.load_connections:
        results[f"c{connections}"] = wrk_run(work, port, "/api/items", connections,
                                             plan.load_s, pids)
    return results


def timed_get(port: int, path: str, timeout: float = 30.0) -> tuple[int | None, str | None, float]:
    started = time.monotonic()
    try:
        status, body = B.http_get(port, path, timeout=timeout)
        try:
            code = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None
    except OSError as error:
        status, code = None, type(error).__name__
    return status, code, round(time.monotonic() - started, 3)


def scenario_faults(procs: B.Procs, bins: Path, work: Path, plan: Plan) -> dict:
    results: dict = {}
    timeouts = {"BACKEND_TIMEOUT_MS": "4000", "DNS_TIMEOUT_MS": "1000"}

    # The back end killed: how soon does the relay say so, and how soon does it recover?
    backend_port = B.free_port()
    env = B.backend_env(work / "data-faults", backend_port,
                        f"{LOOPBACK}:{closed_port()}") | limits_env(plan)
    backend = procs.start("backend-faults", [str(bins / "backend")], env)
    B.wait_ready(procs, "backend-faults", backend, backend_port)
    _, port = start_frontend(procs, bins, f"http://{LOOPBACK}:{backend_port}", plan,
                             name="frontend-faults", extra=timeouts)
    assert timed_get(port, "/api/items")[0] == 200
    killed_at = time.monotonic()
    backend.kill()
    backend.wait()
    while True:
        status, code, _ = timed_get(port, "/api/items")
        if status != 200 or time.monotonic() - killed_at > 10:
            break
    results["killed"] = {"status": status, "code": code,
                         "diagnosed_after_ms": round((time.monotonic() - killed_at) * 1000, 1)}
    restarted_at = time.monotonic()
    backend = procs.start("backend-faults-2", [str(bins / "backend")], env)
    while time.monotonic() - restarted_at < 20:
        if timed_get(port, "/api/items", timeout=2)[0] == 200:
            break
        time.sleep(0.01)
    results["killed"]["recovered_after_restart_ms"] = round(
        (time.monotonic() - restarted_at) * 1000, 1)
    procs.stop_all()

    # Silent (accepts, never answers) and never accepting (a full accept queue).
    silent = socket.socket()
    silent.bind((LOOPBACK, 0))
    silent.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_hold() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                pass

    holder = threading.Thread(target=accept_and_hold)
    holder.start()
    full = socket.socket()
    full.bind((LOOPBACK, 0))
    full.listen(0)
    filler = socket.create_connection(full.getsockname())
    for name, url in (("silent", f"http://{LOOPBACK}:{silent.getsockname()[1]}"),
                      ("never_accepting", f"http://{LOOPBACK}:{full.getsockname()[1]}")):
        _, port = start_frontend(procs, bins, url, plan, name=f"frontend-{name}", extra=timeouts)
        status, code, seconds = timed_get(port, "/api/items")
        results[name] = {"status": status, "code": code, "answered_after_s": seconds}
        procs.stop_all()
    stop.set()
    holder.join()
    for s in held + [filler, full, silent]:
        s.close()

    # DNS silent (a UDP socket that never answers) and refusing (a closed UDP port).
    mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mute.bind((LOOPBACK, 0))
    for name, dns in (("dns_silent", f"{LOOPBACK}:{mute.getsockname()[1]}"),
                      ("dns_refusing", f"{LOOPBACK}:{closed_port()}")):
        _, port = start_frontend(procs, bins, "http://backend.lockdown.test:8081", plan,
                                 name=f"frontend-{name}",
                                 extra=timeouts | {"DNS_SERVERS": dns})
        status, code, seconds = timed_get(port, "/api/items")
        results[name] = {"status": status, "code": code, "answered_after_s": seconds}
        procs.stop_all()
    mute.close()
    return results


def scenario_sigterm_under_load(procs: B.Procs, bins: Path, work: Path, plan: Plan) -> dict:
    _, backend_port = start_backend(procs, bins, work / "data-term", plan, name="backend-term")
    frontend, port = start_frontend(procs, bins, f"http://{LOOPBACK}:{backend_port}", plan,
                                    name="frontend-term")
    outcome: dict = {}
    # Until the process is gone: what the clients got while it stopped (0 = a cut connection).
    loader = threading.Thread(target=lambda: outcome.update(
        hammer_result=hammer(port, "/api/items", 10, threads=16,
                             until=lambda: frontend.poll() is not None)))
    loader.start()
    time.sleep(1)
    term_at = time.monotonic()
    frontend.send_signal(signal.SIGTERM)
    try:
        frontend.wait(timeout=15)
        outcome["exit_after_sigterm_s"] = round(time.monotonic() - term_at, 2)
    except subprocess.TimeoutExpired:
        outcome["exit_after_sigterm_s"] = None
    loader.join()
    outcome["by_status"] = {str(k): v for k, v in sorted(outcome.pop("hammer_result").items())}
    return outcome


def scenario_durability(procs: B.Procs, bins: Path, work: Path, plan: Plan) -> dict:
    """Rounds of: writers create items, the back end is SIGKILLed mid-write, restarted; every
    item it acknowledged (201) must be there."""
    import http.client

    data = work / "data-durable"
    port = B.free_port()
    env = B.backend_env(data, port, f"{LOOPBACK}:{closed_port()}")
    acknowledged: set[str] = set()
    for round_no in range(plan.durability_rounds):
        proc = procs.start(f"backend-durable-{round_no}", [str(bins / "backend")], env)
        B.wait_ready(procs, f"backend-durable-{round_no}", proc, port)
        stop = threading.Event()
        lock = threading.Lock()

        def write() -> None:
            conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    conn.request("POST", "/api/items",
                                 body=json.dumps({"name": f"r{round_no} {n}"}),
                                 headers={"X-Api-Key": B.API_KEY,
                                          "Content-Type": "application/json"})
                    response = conn.getresponse()
                    body = response.read()
                    if response.status == 201:
                        with lock:
                            acknowledged.add(json.loads(body)["id"])
                    elif response.status == 409:  # the store is full
                        break
                except (OSError, http.client.HTTPException):
                    break

        writers = [threading.Thread(target=write) for _ in range(4)]
        for w in writers:
            w.start()
        time.sleep(0.5)
        proc.kill()
        proc.wait()
        stop.set()
        for w in writers:
            w.join()
    proc = procs.start("backend-durable-check", [str(bins / "backend")], env)
    B.wait_ready(procs, "backend-durable-check", proc, port)
    status, body = B.http_get(port, "/api/items", {"X-Api-Key": B.API_KEY}, timeout=10)
    present = {item["id"] for item in json.loads(body)["items"]} if status == 200 else set()
    return {"rounds": plan.durability_rounds, "acknowledged": len(acknowledged),
            "lost": len(acknowledged - present)}


def scenario_fuzz(procs: B.Procs, bins: Path, work: Path, plan: Plan) -> dict:
    """Malformed requests on raw sockets; the servers must answer 4xx or close, never 5xx or
    crash."""
    import random

    rng = random.Random(18)
    backend, backend_port = start_backend(procs, bins, work / "data-fuzz", plan,
                                          name="backend-fuzz")
    frontend, port = start_frontend(procs, bins, f"http://{LOOPBACK}:{backend_port}", plan,
                                    name="frontend-fuzz")
    methods = [b"GET", b"POST", b"DELETE", b"PUT", b"PATCH", b"OPTIONS", b"G\x00T", b"", b"X" * 300]
    paths = [b"/api/items", b"/api/items/", b"/api/items/%FF", b"/api/items/../../etc/passwd",
             b"/diag/tcpping?host=%00", b"//", b"*", b"/" + b"a" * 9000, b"/api/path?x=\xff"]
    headers = [b"Host: x", b"Content-Length: -1", b"Content-Length: 99999999999",
               b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip, chunked",
               b"Content-Type: application/json", b"X-Forwarded-For: ::::", b"Cookie: =;;=",
               b"X-Client-IP: 999.1.1.1", b"Authorization: Bearer \xff", b": empty-name",
               b"Expect: 100-continue", b"Host: x\r\nHost: y"]
    counts = {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0, "closed": 0}
    for n in range(plan.fuzz_requests):
        target = port if n % 2 else backend_port
        head = rng.choice(methods) + b" " + rng.choice(paths) + rng.choice(
            [b" HTTP/1.1", b" HTTP/1.0", b" HTTP/9.9", b""]) + b"\r\n"
        head += b"\r\n".join(rng.sample(headers, rng.randint(0, 4))) + b"\r\n\r\n"
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        try:
            with socket.create_connection((LOOPBACK, target), timeout=3) as s:
                s.sendall(head + body)
                answer = s.recv(16)
        except OSError:
            answer = b""
        if answer.startswith(b"HTTP/1.") and len(answer) >= 12 and answer[9:10].isdigit():
            counts[f"{answer[9:10].decode()}xx"] = counts.get(f"{answer[9:10].decode()}xx", 0) + 1
        else:
            counts["closed"] += 1
    alive = backend.poll() is None and frontend.poll() is None
    return {"requests": plan.fuzz_requests, "by_class": counts, "both_alive": alive}


SCENARIOS = [
    ("load", scenario_load),
    ("slow_clients", scenario_slow_clients),
    ("connection_cap", scenario_connection_cap),
    ("outage_logs", scenario_outage_logs),
    ("diag_flood", scenario_diag_flood),
    ("sigterm_in_flight", scenario_sigterm_in_flight),
    ("data_dir_second_instance", scenario_data_dir),
    ("faults", scenario_faults),
    ("sigterm_under_load", scenario_sigterm_under_load),
    ("durability", scenario_durability),
    ("fuzz", scenario_fuzz),
]


def defects(results: dict) -> list[str]:
    """The defects of issue 18 that still reproduce in these results."""
    found = []
    slow = results.get("slow_clients", {})
    if slow.get("slowloris_open"):
        found.append(f"{slow['slowloris_open']} slowloris connections still open")
    if slow.get("idle_open"):
        found.append(f"{slow['idle_open']} idle connections still open")
    if not results.get("connection_cap", {}).get("over_cap_503"):
        found.append("no 503 past the connection cap")
    outage = results.get("outage_logs", {})
    if outage.get("log_lines_naming_connect_refused", 0) < 1:
        found.append("the outage's log never names connect_refused")
    if outage.get("requests") and outage.get("log_bytes", 0) > 20_000:
        found.append(f"outage logs {outage['log_bytes']} bytes")
    flood = results.get("diag_flood", {})
    if flood.get("log_bytes", 0) > 20_000:
        found.append(f"a /diag flood logs {flood['log_bytes']} bytes")
    sigterm = results.get("sigterm_in_flight", {})
    if sigterm.get("status") is None:
        found.append("a request in flight at SIGTERM is cut without an answer")
    data_dir = results.get("data_dir_second_instance", {})
    if data_dir.get("exited_after_s", 0) < 1.5 or data_dir.get("non_json_lines", 1):
        found.append("a second back end on DATA_DIR exits at once or not in JSON")
    fuzz = results.get("fuzz", {})
    if fuzz.get("by_class", {}).get("5xx") or fuzz.get("both_alive") is False:
        found.append(f"fuzz: {fuzz.get('by_class')} alive={fuzz.get('both_alive')}")
    if results.get("durability", {}).get("lost"):
        found.append(f"durability: {results['durability']['lost']} acknowledged items lost")
    if results.get("secrets", {}).get("secrets_found"):
        found.append(f"{results['secrets']['secrets_found']} secrets in the logs")
    for name, section in results.items():
        if isinstance(section, dict) and "failed" in section:
            found.append(f"{name} could not run: {section['failed'][:200]}")
    return found


def secrets_sweep(work: Path) -> dict:
    """Every log the scenarios wrote, searched for the API key and the /diag token."""
    logs = list(work.glob("*.log"))
    found = 0
    for path in logs:
        text = path.read_bytes()
        found += text.count(B.API_KEY.encode()) + text.count(B.DIAG_TOKEN.encode())
    return {"log_files": len(logs), "log_bytes": sum(p.stat().st_size for p in logs),
            "secrets_found": found}


def run(bins: Path, plan: Plan) -> dict:
    work = Path(tempfile.mkdtemp(prefix="lockdown-reliability-"))
    procs = B.Procs(work)
    results: dict = {"quick": plan.quick, "bins": str(bins)}
    try:
        for name, scenario in SCENARIOS:
            log(f"{name} …")
            started = time.monotonic()
            try:
                results[name] = scenario(procs, bins, work, plan)
            except B.Failure as error:
                results[name] = {"failed": str(error)}
            finally:
                procs.stop_all()
            log(f"{name}: {json.dumps(results[name])} ({time.monotonic() - started:.1f} s)")
        results["secrets"] = secrets_sweep(work)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    results["defects"] = defects(results)
    return results


ROWS = [
    ("slowloris connections open after the header timeout + 2 s",
     lambda r: r["slow_clients"].get("slowloris_open"), "slow_clients"),
    ("idle connections open after the idle timeout + 2 s",
     lambda r: r["slow_clients"].get("idle_open"), "slow_clients"),
    ("a connection past MAX_CONNECTIONS answered 503 (1 = yes)",
     lambda r: r["connection_cap"].get("over_cap_503"), "connection_cap"),
    ("back end down: requests relayed",
     lambda r: r["outage_logs"].get("requests"), "outage_logs"),
    ("back end down: front-end log bytes",
     lambda r: r["outage_logs"].get("log_bytes"), "outage_logs"),
    ("back end down: log lines naming connect_refused",
     lambda r: r["outage_logs"].get("log_lines_naming_connect_refused"), "outage_logs"),
    ("back end down: ERROR lines",
     lambda r: r["outage_logs"].get("log_error_lines"), "outage_logs"),
    ("/diag flood: requests",
     lambda r: r["diag_flood"].get("requests"), "diag_flood"),
    ("/diag flood: log bytes",
     lambda r: r["diag_flood"].get("log_bytes"), "diag_flood"),
    ("SIGTERM, request in flight: status the client got (none = cut)",
     lambda r: r["sigterm_in_flight"].get("status"), "sigterm_in_flight"),
    ("SIGTERM, request in flight: code",
     lambda r: r["sigterm_in_flight"].get("code"), "sigterm_in_flight"),
    ("SIGTERM, request in flight: answered after (s)",
     lambda r: r["sigterm_in_flight"].get("answered_after_s"), "sigterm_in_flight"),
    ("second back end on DATA_DIR: exited after (s)",
     lambda r: r["data_dir_second_instance"].get("exited_after_s"), "data_dir_second_instance"),
    ("second back end on DATA_DIR: non-JSON output lines",
     lambda r: r["data_dir_second_instance"].get("non_json_lines"), "data_dir_second_instance"),
]


def load_rows(results: dict) -> list[str]:
    return sorted(k for k in results.get("load", {}) if k.startswith("c"))


def add_load_rows(before: dict, after: dict) -> list:
    rows = []
    for key in sorted(set(load_rows(before)) | set(load_rows(after)),
                      key=lambda k: int(k[1:])):
        c = key[1:]
        rows += [
            (f"relay load c={c}: answers by status",
             lambda r, k=key: r["load"][k]["by_status"], "load"),
            (f"relay load c={c}: socket errors (connect/read/write/timeout)",
             lambda r, k=key: "/".join(str(v) for v in r["load"][k]["socket_errors"].values()),
             "load"),
            (f"relay load c={c}: p99 ms", lambda r, k=key: r["load"][k]["p99_ms"], "load"),
            (f"relay load c={c}: front-end RSS peak / 3 s after (MB)",
             lambda r, k=key: f"{r['load'][k]['rss_peak_mb']} / {r['load'][k]['rss_after_mb']}",
             "load"),
        ]
    return rows


FAULT_ROWS = [
    ("back end killed: answer, time to it (ms)",
     lambda r: f"{r['faults']['killed']['status']} {r['faults']['killed']['code']}, "
               f"{r['faults']['killed']['diagnosed_after_ms']}", "faults"),
    ("back end restarted: first 200 after (ms)",
     lambda r: r["faults"]["killed"]["recovered_after_restart_ms"], "faults"),
] + [
    (f"{name.replace('_', ' ')}: answer, after (s)",
     lambda r, n=name: f"{r['faults'][n]['status']} {r['faults'][n]['code']}, "
                       f"{r['faults'][n]['answered_after_s']}", "faults")
    for name in ("silent", "never_accepting", "dns_silent", "dns_refusing")
] + [
    ("SIGTERM under load: exit after (s)",
     lambda r: r["sigterm_under_load"]["exit_after_sigterm_s"], "sigterm_under_load"),
    ("SIGTERM under load: answers until exit by status (0 = cut)",
     lambda r: r["sigterm_under_load"]["by_status"], "sigterm_under_load"),
    ("durability: rounds (SIGKILL mid-write) / acknowledged / lost",
     lambda r: f"{r['durability']['rounds']} / {r['durability']['acknowledged']} / "
               f"{r['durability']['lost']}", "durability"),
    ("fuzz: malformed requests, answers by class, both alive",
     lambda r: f"{r['fuzz']['requests']}: {r['fuzz']['by_class']}, {r['fuzz']['both_alive']}",
     "fuzz"),
    ("secrets sweep: API key or /diag token in the logs",
     lambda r: r["secrets"]["secrets_found"], "secrets"),
]


def report(before: dict, after: dict) -> str:
    def cell(results: dict, getter, section) -> str:
        try:
            if "failed" in results.get(section, {}):
                return "failed to run"
            value = getter(results)
        except (KeyError, TypeError, AttributeError):
            return "—"
        return "none" if value is None else str(value)

    lines = [
        "| scenario | before | after |",
        "|---|---|---|",
    ]
    for label, getter, section in add_load_rows(before, after) + ROWS + FAULT_ROWS:
        lines.append(f"| {label} | {cell(before, getter, section)} | "
                     f"{cell(after, getter, section)} |")
    lines.append("")
    lines.append(f"Defects still reproducing before: {len(before.get('defects', []))} "
                 f"({'; '.join(before.get('defects', [])) or 'none'}).")
    lines.append(f"After: {len(after.get('defects', []))} "
                 f"({'; '.join(after.get('defects', [])) or 'none'}).")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="short timeouts and fewer clients (~1 min; CI)")
    parser.add_argument("--bins", type=Path,
                        help="folder with backend and frontend (default: build the release)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--report", nargs=2, type=Path, metavar=("BEFORE", "AFTER"),
                        help="print the before/after table of two result files")
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(args.report[0].read_text()),
                     json.loads(args.report[1].read_text())))
        return 0
    bins = args.bins
    if bins is None:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "backend",
                        "-p", "frontend"], check=True, cwd=B.REPO)
        bins = B.target_dir() / "release"
    results = run(bins.resolve(), Plan(args.quick))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    for defect in results["defects"]:
        log(f"DEFECT: {defect}")
    return 1 if results["defects"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
