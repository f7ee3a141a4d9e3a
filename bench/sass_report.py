#!/usr/bin/env python3
"""Reads the fused kernels' SASS: compiles the fused step's kernel files (kernel_sources: the
dispatcher, the evaluation and every kernels/mapping_*.cu, as CMake's SP_KERNEL_SOURCES) for one
architecture (as the build does: -fmad=false), disassembles it with cuobjdump, finds each training kernel's per-sample loop
(the innermost loop with FFMA: one iteration is one sample of one lane) and counts its
instructions by kind, on each of its two paths: rows drawn with Philox, rows loaded from memory
(the registers mapping's rows-on-chip kernels have one: rows read from shared memory).
bench/CEILING.md turns these counts into the instruction-issue ceiling.

cuobjdump and nvdisasm are not in every CUDA install: `pip install nvidia-cuda-cuobjdump
nvidia-cuda-nvdisasm` provides them; pass --cuobjdump or put it on PATH.

usage: sass_report.py [--nvcc NVCC] [--arch 90] [--cuobjdump PATH] [--out FILE.json]
                     [--check FILE.json]
--check compares with a committed report (a CTest test does, so that bench/CEILING.md's counts
follow the kernels): exit 1 when the counts differ, 77 (skipped) when this nvcc is another
version than the report's or no cuobjdump is found."""
import argparse
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTRUCTION = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);")


def kernel_sources():
    """The fused step's kernel files, as CMakeLists.txt lists them (SP_KERNEL_SOURCES)."""
    kernels = os.path.join(ROOT, "kernels")
    return [os.path.join(kernels, "dispatch.cu"), os.path.join(kernels, "evaluate.cu")] + \
        sorted(glob.glob(os.path.join(kernels, "mapping_*.cu")))


def demangled_kernel(name):
    # _ZN2sp4cuda...train_steps_sharedILi20ELi5EE... -> train_steps_shared<20, 5>
    # ...train_steps_registersILi2ELi1ELb1EE... -> train_steps_registers<2, 1, true>
    match = re.search(r"(train_steps_[a-z]+|evaluate_kernel)(?:ILi(\d+)ELi(\d+)E(?:Lb([01])E)?E)?E?vN",
                      name)
    if not match:
        return None
    base, n, m, flag = match.groups()
    if flag is not None:
        return f"{base}<{n}, {m}, {'true' if flag == '1' else 'false'}>"
    return f"{base}<{n}, {m}>" if n else base


def functions(sass):
    current, body = None, []
    for line in sass.splitlines():
        header = re.search(r"Function : (\S+)", line)
        if header:
            if current:
                yield current, body
            current, body = header.group(1), []
            continue
        found = INSTRUCTION.search(line)
        if found and current:
            address, _, opcode, operands = found.groups()
            body.append((int(address, 16), opcode, operands))
    if current:
        yield current, body


def loops(body):
    """Every backward branch's [target, branch] range, with its instructions."""
    for index, (address, opcode, operands) in enumerate(body):
        if opcode.startswith("BRA"):
            target = re.search(r"0x([0-9a-f]+)", operands)
            if target and int(target.group(1), 16) < address:
                start = int(target.group(1), 16)
                yield [i for i in body if start <= i[0] <= address]


def split_paths(loop, rows_without_branch="both"):
    """The loop's per-iteration count for each data path: the first forward conditional branch
    that skips a block ending in an unconditional forward branch (if/else) separates them."""
    addresses = [i[0] for i in loop]
    for address, opcode, operands in loop:
        target = re.search(r"0x([0-9a-f]+)", operands)
        if not target or not opcode.startswith("BRA") or int(target.group(1), 16) <= address:
            continue
        then_start, else_start = address, int(target.group(1), 16)
        if else_start not in addresses:
            continue
        jump = loop[addresses.index(else_start) - 1]
        join = re.search(r"0x([0-9a-f]+)", jump[2])
        if not (jump[1].startswith("BRA") and join and int(join.group(1), 16) > else_start):
            continue
        join_at = int(join.group(1), 16)
        first = [i for i in loop if then_start < i[0] < else_start]
        second = [i for i in loop if else_start <= i[0] < join_at]
        common = [i for i in loop if i not in first and i not in second]
        paths = []
        for part in (first, second):
            counts = mix(common + part)
            paths.append({"rows": "drawn" if counts.get("I2FP", 0) else "loaded",
                          "instructions": len(common) + len(part),
                          "ffma": counts.get("FFMA", 0), "mix": counts})
        if {p["rows"] for p in paths} == {"drawn", "loaded"}:
            return paths
    counts = mix(loop)
    return [{"rows": rows_without_branch, "instructions": len(loop), "ffma": counts.get("FFMA", 0),
             "mix": counts}]


def mix(instructions):
    counts = collections.Counter(opcode.split(".")[0] for _, opcode, _ in instructions)
    return dict(counts.most_common())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nvcc", default=shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc")
    parser.add_argument("--arch", default="90")
    parser.add_argument("--cuobjdump", default=find_cuobjdump())
    parser.add_argument("--out")
    parser.add_argument("--check")
    args = parser.parse_args()
    if not args.cuobjdump:
        print("sass_report: no cuobjdump (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)",
              file=sys.stderr)
        return 77 if args.check else 2
    nvcc_version = subprocess.run([args.nvcc, "--version"], capture_output=True,
                                  text=True).stdout.strip().splitlines()[-1]
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(args.cuobjdump) + os.pathsep + env.get("PATH", "")
    sass = ""
    with tempfile.TemporaryDirectory() as tmp:
        for source in kernel_sources():
            cubin = os.path.join(tmp, os.path.basename(source) + ".cubin")
            subprocess.run([args.nvcc, "-std=c++17", "-cubin", f"-arch=sm_{args.arch}",
                            "-fmad=false", f"-I{ROOT}", source, "-o", cubin], check=True)
            sass += subprocess.run([args.cuobjdump, "-sass", cubin], check=True,
                                   capture_output=True, text=True, env=env).stdout
    report = {}
    for name, body in functions(sass):
        kernel = demangled_kernel(name)
        if not kernel or not kernel.startswith("train_steps"):
            continue
        # The per-sample loop: the innermost loop with FFMA. Its body holds both ways to get a row
        # behind a branch: drawn (Philox, whose uniforms' int-to-float is I2FP: fresh data, or
        # fixed data drawn again) or loaded (fixed data from memory); each path's count is the
        # common part plus its own.
        sample_loops = [loop for loop in loops(body) if mix(loop).get("FFMA", 0)]
        innermost = [loop for loop in sample_loops
                     if not any(other[0][0] >= loop[0][0] and other[-1][0] <= loop[-1][0] and
                                len(other) < len(loop) for other in sample_loops)]
        entry = {"instructions": len(body), "sample_loops": []}
        # The registers mapping's rows-on-chip kernel (<n, m, true>) has one path: shared memory.
        single = "on chip" if kernel.endswith(", true>") else "both"
        for loop in innermost:
            entry["sample_loops"].extend(split_paths(loop, single))
        report[kernel] = entry
    # A loop without a branch inside may be unrolled: ptxas runs four samples per iteration of
    # <2, 1, true>'s. The same math has the same FFMA per sample as the kernel's loaded path
    # (<n, m, false>), so the ratio of FFMA counts is the samples an iteration runs.
    for kernel, entry in report.items():
        sibling = report.get(kernel.replace(", true>", ", false>"))
        if not kernel.endswith(", true>") or not sibling:
            continue
        per_sample = [loop["ffma"] for loop in sibling["sample_loops"] if loop["rows"] == "loaded"]
        for loop in entry["sample_loops"]:
            if per_sample and per_sample[0] and loop["ffma"] % per_sample[0] == 0:
                samples = loop["ffma"] // per_sample[0]
                loop["samples_per_iteration"] = samples
                loop["instructions_per_iteration"] = loop["instructions"]
                loop["instructions"] = loop["instructions"] / samples
                loop["ffma"] = loop["ffma"] // samples
    for kernel, entry in report.items():
        for loop in entry["sample_loops"]:
            unrolled = loop.get("samples_per_iteration", 1)
            print(f"{kernel:35} {loop['rows']:7} {loop['instructions']:6g} instructions per "
                  f"sample ({loop['ffma']} FFMA)" +
                  (f", {unrolled} samples an iteration" if unrolled > 1 else ""))
    document = {"tool": "sass_report", "arch": f"sm_{args.arch}", "nvcc": nvcc_version,
                "kernels": report}
    if args.out:
        with open(args.out, "w") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
    if args.check:
        if not os.path.exists(args.check):
            print(f"skipped: no committed report {args.check} for this architecture")
            return 77
        with open(args.check) as committed_file:
            committed = json.load(committed_file)
        if committed.get("nvcc") != nvcc_version or committed.get("arch") != document["arch"]:
            print(f"skipped: {args.check} was made by {committed.get('nvcc')} for "
                  f"{committed.get('arch')}, this is {nvcc_version} for {document['arch']}")
            return 77
        if committed["kernels"] != report:
            print(f"the kernels' SASS changed since {args.check} was written: run\n"
                  f"  bench/sass_report.py --out {args.check}\n"
                  "and update the counts in bench/CEILING.md")
            return 1
        print(f"SASS counts match {args.check}")
    return 0


def find_cuobjdump():
    """cuobjdump on PATH, else the one PyPI's nvidia-cuda-cuobjdump put beside this Python."""
    found = shutil.which("cuobjdump")
    if found:
        return found
    for site in sys.path:
        for candidate in sorted(glob.glob(os.path.join(site, "nvidia", "*", "bin", "cuobjdump"))):
            return candidate
    return None


if __name__ == "__main__":
    sys.exit(main())
