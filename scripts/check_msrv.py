#!/usr/bin/env python3
"""Checks the declared rust-version: the toolchain here must meet it, and no
dependency in the lock file may need a newer one. Only one toolchain can be
installed on these machines, so this (plus clippy's incompatible_msrv lint,
which reads rust-version) is how CI keeps the MSRV honest."""
import json
import subprocess
import sys


def ver(s):
    parts = [int(p) for p in s.split("-")[0].split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


host = next(l.split()[1] for l in subprocess.check_output(["rustc", "-vV"], text=True).splitlines() if l.startswith("host:"))
meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", host]
))
ours = next(p for p in meta["packages"] if p["name"] == "alertkit" and p["source"] is None)
msrv = ver(ours["rust_version"])
rustc = subprocess.check_output(["rustc", "--version"], text=True).split()[1]
problems = []
if ver(rustc) < msrv:
    problems.append(f"rustc {rustc} is older than rust-version {ours['rust_version']}")
needed = set()
for node in meta["resolve"]["nodes"]:
    needed.add(node["id"])
for p in meta["packages"]:
    rv = p.get("rust_version")
    if p["id"] in needed and rv and ver(rv) > msrv:
        problems.append(f"{p['name']} {p['version']} needs rust {rv} > {ours['rust_version']}")
for line in problems:
    print("MSRV:", line)
if problems:
    sys.exit(1)
print(f"rust-version {ours['rust_version']} OK (rustc {rustc}; {len(needed)} packages checked)")
