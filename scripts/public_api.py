#!/usr/bin/env python3
"""The public API as a sorted list of item paths, read from rustdoc's HTML
(target/doc/alertkit, built by `cargo doc --no-deps --all-features`), compared
with api/public-api.txt. Every public module, type, trait, function, macro and
constant, and every inherent method, field, variant and trait item is one
line. A change to the list must be deliberate: rerun with `--bless` and commit
the file with the change (CHANGELOG says whether it breaks). Until
cargo-semver-checks has a published version to compare with, this is the
check that a refactor did not remove or rename something by accident.
"""
import html
import os
import re
import sys

ROOT = "target/doc/alertkit"
SNAPSHOT = "api/public-api.txt"
KINDS = ("struct", "enum", "trait", "fn", "type", "constant", "static", "macro", "attr", "derive", "union")
MEMBER_IDS = re.compile(r'id="((?:method|tymethod|structfield|variant|associatedtype|associatedconstant)\.[A-Za-z0-9_]+)"')


def inherent_section(page):
    """Inherent impls and the item's own fields/variants/trait items: the
    page up to its trait implementations."""
    for marker in ('id="trait-implementations', 'id="synthetic-implementations', 'id="blanket-implementations'):
        i = page.find(marker)
        if i >= 0:
            page = page[:i]
    return page


def items():
    out = set()
    for dirpath, _, files in os.walk(ROOT):
        module = os.path.relpath(dirpath, ROOT)
        prefix = "alertkit" if module == "." else "alertkit::" + module.replace(os.sep, "::")
        for f in files:
            if not f.endswith(".html"):
                continue
            if f == "index.html":
                out.add(f"mod {prefix}")
                continue
            kind, _, rest = f.partition(".")
            if kind not in KINDS:
                continue
            with open(os.path.join(dirpath, f), encoding="utf-8") as fh:
                page = fh.read()
            # rustdoc leaves redirect pages at an item's private definition
            # path (policy/rate_limit/...): not a public path.
            if 'http-equiv="refresh"' in page[:2000]:
                continue
            name = rest[: -len(".html")]
            path = f"{prefix}::{name}"
            out.add(f"{kind} {path}")
            if kind in ("struct", "enum", "trait", "union"):
                page = inherent_section(page)
                for member in set(MEMBER_IDS.findall(page)):
                    what, _, m = member.partition(".")
                    out.add(f"{kind} {path} {what} {html.unescape(m)}")
    return sorted(out)


def main():
    if not os.path.isdir(ROOT):
        sys.exit(f"{ROOT} missing: run `cargo doc --no-deps --all-features` first")
    now = items()
    if "--bless" in sys.argv:
        os.makedirs(os.path.dirname(SNAPSHOT), exist_ok=True)
        with open(SNAPSHOT, "w", encoding="utf-8") as fh:
            fh.write("\n".join(now) + "\n")
        print(f"{SNAPSHOT}: {len(now)} items")
        return
    try:
        with open(SNAPSHOT, encoding="utf-8") as fh:
            before = [l for l in fh.read().splitlines() if l]
    except FileNotFoundError:
        sys.exit(f"{SNAPSHOT} missing: run scripts/public_api.py --bless")
    removed = sorted(set(before) - set(now))
    added = sorted(set(now) - set(before))
    if removed or added:
        for l in removed:
            print(f"- {l}")
        for l in added:
            print(f"+ {l}")
        sys.exit(
            f"the public API changed ({len(removed)} removed, {len(added)} added): "
            "if meant, run scripts/public_api.py --bless, commit api/public-api.txt and say so in CHANGELOG.md"
        )
    print(f"public API unchanged ({len(now)} items)")


if __name__ == "__main__":
    main()
