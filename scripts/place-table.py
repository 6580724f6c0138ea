#!/usr/bin/env python3
"""Prints the FGD-experiment table (markdown) from `joule place --json` outputs.

Usage: scripts/place-table.py out/place/*.json
"""
import json
import sys

POLICIES = ["random", "dotprod", "packing", "bestfit", "fgd", "joule"]
CHECKPOINT = 1  # index of arrived = 100%

print("| task list | " + " | ".join(POLICIES) + " | joule − fgd |")
print("|---|" + "---:|" * (len(POLICIES) + 1))
for path in sys.argv[1:]:
    with open(path) as f:
        data = json.load(f)
    means = {p["policy"]: p["mean"][CHECKPOINT]["unallocated_pct"] for p in data["policies"]}
    name = data["tasks"].rsplit("/", 1)[-1].removeprefix("openb_pod_list_").removesuffix(".csv")
    cells = " | ".join(f"{means[p]:.2f}" for p in POLICIES)
    print(f"| {name} | {cells} | {means['joule'] - means['fgd']:+.2f} |")
