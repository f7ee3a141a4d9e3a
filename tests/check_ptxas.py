#!/usr/bin/env python3
"""Compiles the fused step's kernel files (CMake's SP_KERNEL_SOURCES: kernels/dispatch.cu,
kernels/evaluate.cu and every kernels/mapping_*.cu) with ptxas's resource report and fails on any
register spill, stack frame or local-memory use in the training and evaluation kernels.

usage: check_ptxas.py NVCC SOURCE_DIR ARCH KERNEL.cu..."""
import re
import subprocess
import sys
import tempfile


def main():
    nvcc, root, arch = sys.argv[1:4]
    sources = sys.argv[4:]
    if not sources:
        print("check_ptxas: no kernel files given")
        return 1
    failures, kernels = [], 0
    for source in sources:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [nvcc, "-std=c++17", "-cubin", f"-arch=sm_{arch}", "-fmad=false", "-Xptxas=-v",
                   f"-I{root}", source, "-o", f"{tmp}/kernels.cubin"]
            run = subprocess.run(cmd, capture_output=True, text=True)
        report = run.stdout + run.stderr
        if run.returncode != 0:
            print(report)
            return 1
        current = None
        for line in report.splitlines():
            entry = re.search(r"Compiling entry function '([^']+)'", line)
            if entry:
                current = entry.group(1)
                continue
            props = re.search(
                r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
            if props and current:
                kernels += 1
                stack, stores, loads = map(int, props.groups())
                if stack or stores or loads:
                    failures.append(f"{current}: {line.strip()}")
            used = re.search(r"Used (\d+) registers", line)
            if used and current:
                print(f"{current}: {used.group(1)} registers")
            if "lmem" in line and current and not re.search(r"\b0 bytes lmem", line):
                failures.append(f"{current}: {line.strip()}")
    if kernels == 0:
        print("no kernel reports found in ptxas output")
        return 1
    for failure in failures:
        print("SPILL/LOCAL MEMORY:", failure)
    print(f"{kernels} kernels checked, {len(failures)} with spills or local memory")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
