"""Runs checkov over infra/ and holds it to three rules: no failed check, no parsing error,
and every `// checkov:skip=CKV_...: reason` has a real reason and is actually used (a skip
for a check that no longer runs there is stale and must go).

Files with an `extension` statement (the Microsoft Graph module) are left to tree-sitter and the
security-property test: checkov's Bicep parser cannot read that statement, and it has no check
for Microsoft Graph resources.

Usage: python3 infra/checks/checkov_report.py [INFRA_DIR]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from bicep_source import uses_extension

SKIP = re.compile(r"//\s*checkov:skip=(CKV2?_[A-Z0-9_]+)(?::\s*(.*))?$")
MIN_REASON_CHARS = 20


def main() -> int:
    infra = Path(sys.argv[1] if len(sys.argv) > 1 else "infra").resolve()
    extension_files = sorted(p for p in infra.rglob("*.bicep") if uses_extension(p.read_text()))
    skip_paths = [arg for p in extension_files for arg in ("--skip-path", str(p.relative_to(infra)))]
    run = subprocess.run(
        [sys.executable, "-m", "checkov.main", "--directory", str(infra), "--skip-download", "--output", "json", *skip_paths],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        reports = json.loads(run.stdout)
    except json.JSONDecodeError:
        print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
        print("checkov: no JSON report")
        return 1
    reports = reports if isinstance(reports, list) else [reports]

    problems: list[str] = []
    skipped: set[tuple[str, str]] = set()
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    for report in reports:
        summary = report.get("summary", {})
        for key in totals:
            totals[key] += summary.get(key, 0)
        if summary.get("parsing_errors"):
            problems.append(f"{report.get('check_type')}: {summary['parsing_errors']} parsing error(s)")
        for failed in report.get("results", {}).get("failed_checks", []):
            lines = failed.get("file_line_range")
            problems.append(
                f"FAILED {failed['check_id']} ({failed['check_name']}) for {failed['resource']} "
                f"in {failed['file_path']}:{lines[0]}-{lines[1]}"
            )
        for skip in report.get("results", {}).get("skipped_checks", []):
            skipped.add((skip["file_path"].lstrip("/"), skip["check_id"]))

    for path in sorted(infra.rglob("*.bicep")):
        relative = path.relative_to(infra).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = SKIP.search(line)
            if not match:
                continue
            check_id, reason = match.group(1), (match.group(2) or "").strip()
            if len(reason) < MIN_REASON_CHARS:
                problems.append(f"{relative}:{number}: skip of {check_id} needs a reason (`// checkov:skip={check_id}: why`)")
            if (relative, check_id) not in skipped:
                problems.append(f"{relative}:{number}: skip of {check_id} is not used by any resource there: remove it")

    print(f"checkov {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped (each with a reason)")
    for path in extension_files:
        print(f"not scanned by checkov (Bicep extension, no checks for its types): {path.relative_to(infra)}")
    for problem in problems:
        print(problem)
    return 1 if problems or run.returncode not in (0, 1) else 0


if __name__ == "__main__":
    sys.exit(main())
