#!/usr/bin/env python3
"""The layers of docs/design.md §5, checked: every #include of the project's own headers in
kernels/ and host/ runs down the layers or stays in its own, never up, and never sideways between
backends/ and io/. Exit 1 naming each include that does not.

  kernels/ (the math and the fused step)  <  host/core/  <  host/backends/, host/io/
  <  host/sweep/  <  host/studies/  <  host/cli/  <  host/python/

usage: check_layers.py SOURCE_DIR"""
import os
import re
import sys

RANK = {"kernels": 0, "core": 1, "backends": 2, "io": 2, "sweep": 3, "studies": 4, "cli": 5,
        "python": 6}


def layer(path):
    parts = path.split("/")
    return "kernels" if parts[0] == "kernels" else parts[1]


def main():
    root = sys.argv[1]
    problems, checked = [], 0
    for top in ("kernels", "host"):
        for directory, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                path = os.path.relpath(os.path.join(directory, name), root)
                if not name.endswith((".hpp", ".cpp", ".cu", ".cuh", ".inc")):
                    continue
                with open(os.path.join(root, path), encoding="utf-8") as f:
                    text = f.read()
                for included in re.findall(r'#include "((?:host|kernels)/[^"]+)"', text):
                    checked += 1
                    a, b = layer(path), layer(included)
                    if a not in RANK or b not in RANK:
                        problems.append(f"{path}: {included}: a folder outside the layers")
                    elif RANK[b] > RANK[a] or (RANK[a] == RANK[b] and a != b):
                        problems.append(f"{path} ({a}) includes {included} ({b}): up the layers"
                                        if RANK[b] > RANK[a] else
                                        f"{path} ({a}) includes {included} ({b}): sideways")
    for problem in problems:
        print(problem)
    print(f"{checked} includes checked, {len(problems)} against the layers")
    return 1 if problems or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
