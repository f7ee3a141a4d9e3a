#!/usr/bin/env python3
"""check_portable.py BINARY... — that a superpose binary runs on any x86-64 CPU.

The host code is compiled for baseline x86-64 except the CPU backend's SIMD step, which is compiled
once per instruction set (host/backends/cpu_simd.inc) into the namespaces sp::cpu::avx2 and sp::cpu::avx512
and only entered after the CPU was found to have the set (cpu_backend.cpp: simd_path). An inline
function those files share with the rest (a template, a std:: container) is emitted once per file
and the linker keeps one copy: if it kept a wide one, a CPU without the set would die with SIGILL
far from any check. This disassembles every function and fails where one outside those namespaces
uses an instruction baseline x86-64 lacks (AVX/AVX-512: the VEX/EVEX 'v' forms and mask registers;
BMI, LZCNT, MOVBE, POPCNT), or where a function of sp::cpu::avx2 uses AVX-512.

--libraries also fails where the binary needs a shared library beyond glibc's and libgcc_s, or a
glibc newer than --max-glibc (the portable build of scripts/prepare-gpu-deps: the C++ runtime and
fmt linked in, glibc 2.34 or newer).
"""
import argparse
import re
import subprocess
import sys

BEYOND_BASELINE = re.compile(
    r"^(v\w+|k\w+|andn|bextr|blsi|blsmsk|blsr|bzhi|mulx|pdep|pext|rorx|sarx|shlx|shrx|lzcnt|"
    r"tzcnt|movbe|popcnt|crc32|pshufb|pmulld|ptest|pblendvb|blendvps|roundps|roundss|pminsd|"
    r"pmaxsd|pextrd|pinsrd|insertps|dpps)$")
AVX512_OPERAND = re.compile(r"%zmm|%k[0-7]|\{%k|\{z\}")
# glibc's, and libgcc_s (GCC's unwinder: part of every glibc system's base, and built for its glibc).
GLIBC = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
         "ld-linux-x86-64.so.2", "libgcc_s.so.1"}


def functions(binary):
    """(demangled name, [(mnemonic, operands)]) for every function in the binary's text."""
    dump = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", "-M", "att", binary],
                          check=True, capture_output=True, text=True).stdout
    name, body = None, []
    for line in dump.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if header:
            if name is not None:
                yield name, body
            name, body = header.group(1), []
            continue
        parts = line.split("\t")
        if name is not None and len(parts) >= 2 and parts[0].strip().endswith(":"):
            fields = parts[1].split(None, 1)
            if fields:
                body.append((fields[0], fields[1] if len(fields) > 1 else ""))
    if name is not None:
        yield name, body


def check_instructions(binary):
    problems, wide = [], 0
    for name, body in functions(binary):
        in_avx512 = "sp::cpu::avx512::" in name
        in_avx2 = "sp::cpu::avx2::" in name and not in_avx512
        for mnemonic, operands in body:
            # Prefixes objdump prints as part of the mnemonic field (rep, lock, notrack, bnd).
            if mnemonic in ("rep", "repz", "repnz", "lock", "notrack", "bnd", "data16", "cs", "ds"):
                mnemonic, _, operands = operands.partition(" ")
            if in_avx512:
                wide += BEYOND_BASELINE.match(mnemonic) is not None
                continue
            if in_avx2:
                if AVX512_OPERAND.search(operands):
                    problems.append(f"{name}: {mnemonic} {operands} (AVX-512 in the avx2 path)")
                    break
                wide += BEYOND_BASELINE.match(mnemonic) is not None
                continue
            if BEYOND_BASELINE.match(mnemonic):
                problems.append(f"{name}: {mnemonic} {operands}")
                break
    return problems, wide


def version_key(version):
    return tuple(int(part) for part in version.split("."))


def check_libraries(binary, max_glibc):
    dynamic = subprocess.run(["readelf", "-d", binary], check=True, capture_output=True,
                             text=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", dynamic)
    problems = [f"needs {library} (only glibc's and libgcc_s may be needed)" for library in needed
                if library not in GLIBC]
    symbols = subprocess.run(["objdump", "-T", binary], check=True, capture_output=True,
                             text=True).stdout
    for line in symbols.splitlines():
        match = re.search(r"\(GLIBC_([0-9.]+)\)\s+(\S+)$", line)
        if match and "*UND*" in line and version_key(match.group(1)) > version_key(max_glibc):
            problems.append(f"{match.group(2)} needs glibc {match.group(1)} (at most {max_glibc})")
    return problems, needed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--libraries", action="store_true",
                        help="also: no shared library beyond glibc's, none newer than --max-glibc")
    parser.add_argument("--max-glibc", default="2.34")
    args = parser.parse_args()
    failed = False
    for binary in args.binaries:
        problems, wide = check_instructions(binary)
        if wide == 0:
            problems.append("no wide instruction in sp::cpu::avx2/avx512 at all: is the SIMD "
                            "step still compiled per instruction set?")
        needed = []
        if args.libraries:
            library_problems, needed = check_libraries(binary, args.max_glibc)
            problems += library_problems
        for problem in problems[:20]:
            print(f"{binary}: {problem}")
        if problems:
            failed = True
            print(f"{binary}: NOT portable ({len(problems)} problems)")
        else:
            libraries = (f"; shared libraries: {', '.join(needed)}, glibc <= {args.max_glibc}"
                         if args.libraries else "")
            print(f"{binary}: portable (baseline x86-64 outside the SIMD paths, {wide} wide "
                  f"instructions inside them{libraries})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
