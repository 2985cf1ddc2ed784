#!/usr/bin/python3
"""Fails when a test was skipped that this machine should run.

Reads the JUnit file ctest wrote (`ctest --output-junit FILE --test-output-size-passed N`),
finds every skip: ctest-level skips (GTEST_SKIP, SKIP_RETURN_CODE) and pytest skips inside
python_tests (from its `-ra` summary, "SKIPPED [n] file:line: reason"). Prints each with its
reason, so the CI log explains every one, and exits 1 unless each matches an entry of the
allow-list (tools/skips_allowed.txt: test-name regex | reason regex | why).
"""
import argparse
import os
import re
import sys
import xml.etree.ElementTree as ET


def load_allowlist(path):
    entries = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.split("|")]
            if len(parts) != 3 or not all(parts):
                sys.exit(f"{path}: bad entry (want 'name | reason | why'): {line}")
            entries.append((re.compile(parts[0]), re.compile(parts[1]), parts[2]))
    return entries


def skips(junit):
    root = ET.parse(junit).getroot()
    for case in root.iter("testcase"):
        name = case.get("name", "")
        out = "".join((e.text or "") for e in case.iter("system-out"))
        skipped = case.find("skipped") is not None or case.get("status") in ("notrun", "disabled")
        if skipped:
            reason_lines = [l.strip() for l in out.splitlines()
                            if re.search(r"SKIP|Skipped|skipped|cannot start", l)]
            msg = case.find("skipped").get("message", "") if case.find("skipped") is not None else ""
            yield name, " / ".join(filter(None, [msg] + reason_lines[:6])) or "(no reason printed)", out
        if name == "python_tests":
            for m in re.finditer(r"^SKIPPED \[\d+\] ([^:\s]+)(?::\d+)?: (.*)$", out, re.M):
                yield f"python_tests::{os.path.basename(m.group(1))}", m.group(2).strip(), out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("junit")
    ap.add_argument("--allow", default=os.path.join(os.path.dirname(__file__), "skips_allowed.txt"))
    args = ap.parse_args()
    allow = load_allowlist(args.allow)
    found = list(skips(args.junit))
    bad = 0
    for name, reason, out in found:
        why = next((w for n, r, w in allow if n.search(name) and r.search(reason + "\n" + out)), None)
        if why:
            print(f"skip (allowed): {name}: {reason}\n    allowed because: {why}")
        else:
            bad += 1
            print(f"SKIP NOT ALLOWED: {name}: {reason}")
    print(f"skips: {len(found)}, not allowed: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
