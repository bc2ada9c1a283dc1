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
           headers: dict | None = None) -> dict[int, int]:
    """GETs on keep-alive connections from `threads` threads for `seconds`: answers by status."""
    import http.client

    counts: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run() -> None:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
        while time.monotonic() < deadline:
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


SCENARIOS = [
    ("slow_clients", scenario_slow_clients),
    ("connection_cap", scenario_connection_cap),
    ("outage_logs", scenario_outage_logs),
    ("diag_flood", scenario_diag_flood),
    ("sigterm_in_flight", scenario_sigterm_in_flight),
    ("data_dir_second_instance", scenario_data_dir),
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
    return found


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


def report(before: dict, after: dict) -> str:
    def cell(results: dict, getter, section) -> str:
        try:
            if "failed" in results.get(section, {}):
                return "failed to run"
            value = getter(results)
        except KeyError:
            return "—"
        return "none" if value is None else str(value)

    lines = [
        "| scenario | before | after |",
        "|---|---|---|",
    ]
    for label, getter, section in ROWS:
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
