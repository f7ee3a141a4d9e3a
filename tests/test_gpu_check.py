#!/usr/bin/env python3
"""test_gpu_check.py MODE ... — scripts/gpu-check as it will run on a lent GPU machine, minus the GPU.

  no-device BIN_DIR WORK   on this machine, which has no device, with the binaries
                           scripts/prepare-gpu-deps made (BIN_DIR): done in under 2 minutes, every
                           stage says that no device is present, and $OUT holds exactly
                           summary.txt and evidence.tar.gz (no folder, each under 16 MiB) — what
                           the device tool can bring back.
  rehearsal BUILD WORK     every stage on the CUDA emulator (the main build's emulated binaries,
                           small sizes): every line of the script runs, every stage passes, and the
                           evidence holds the test report and the benchmark's complete JSON.
"""
import json
import os
import subprocess
import sys
import tarfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ["preflight", "correctness", "bench", "sanitize", "main", "extra"]
LIMIT = 16 << 20


def fail(message):
    sys.exit(f"test_gpu_check: {message}")


def run_gpu_check(bin_dir, work, extra_env):
    out = os.path.join(work, "out")
    subprocess.run(["rm", "-rf", work], check=True)
    os.makedirs(out)
    env = dict(os.environ, OUT=out, SUPERPOSE_GPU_BIN=bin_dir,
               GPU_CHECK_WORK=os.path.join(work, "work"), **extra_env)
    start = time.monotonic()
    result = subprocess.run([os.path.join(ROOT, "scripts", "gpu-check")], env=env,
                            capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - start
    entries = sorted(os.listdir(out))
    if entries != ["evidence.tar.gz", "summary.txt"]:
        fail(f"$OUT holds {entries}, not exactly evidence.tar.gz and summary.txt")
    for name in entries:
        path = os.path.join(out, name)
        if not os.path.isfile(path) or os.path.getsize(path) >= LIMIT:
            fail(f"{name} is not a file under 16 MiB")
    summary = open(os.path.join(out, "summary.txt")).read()
    with tarfile.open(os.path.join(out, "evidence.tar.gz")) as tar:
        members = tar.getnames()
        packed_summary = tar.extractfile("./summary.txt").read().decode()
        documents = {name: tar.extractfile(name).read() for name in members
                     if name.endswith(".json")}
    if packed_summary != summary:
        fail("the packed summary.txt is not the last one")
    return result, seconds, summary, members, documents


def no_device(bin_dir, work):
    if not os.path.exists(os.path.join(bin_dir, "BUILD.txt")):
        print(f"skipped: no prepared binaries in {bin_dir} (scripts/prepare-gpu-deps makes them)")
        return 77
    result, seconds, summary, members, _ = run_gpu_check(bin_dir, work, {})
    if seconds >= 120:
        fail(f"took {seconds:.0f} s without a device (at most 120)")
    if result.returncode != 3:
        fail(f"exit status {result.returncode}, not 3 (no device):\n{summary}")
    for stage in STAGES[1:]:
        if f"{stage}: skipped: no CUDA device present" not in summary:
            fail(f"the summary does not say that {stage} was skipped for want of a device:\n{summary}")
    if "preflight: the four binaries start" not in summary or "preflight: ok" not in summary:
        fail(f"the prepared binaries did not start:\n{summary}")
    if "./logs/start.log" not in members:
        fail(f"the evidence lacks the logs: {members}")
    print(f"ok: {seconds:.1f} s, exit 3, {len(members)} entries in evidence.tar.gz")
    return 0


def rehearsal(build, work):
    # The emulated binaries, laid out as scripts/prepare-gpu-deps lays out the real ones; the GPU
    # tests are the emulated test binary's share of tests/test_cuda.cpp.
    bin_dir = os.path.join(work + "-bin")
    subprocess.run(["rm", "-rf", bin_dir], check=True)
    os.makedirs(os.path.join(bin_dir, "bench"))
    os.symlink(os.path.join(build, "superpose_emulated"), os.path.join(bin_dir, "superpose"))
    os.symlink(os.path.join(build, "tests", "emulator", "bench_kernels_emulated"),
               os.path.join(bin_dir, "bench", "bench_kernels"))
    os.symlink(os.path.join(build, "bench", "bench_train"),
               os.path.join(bin_dir, "bench", "bench_train"))
    tests = os.path.join(bin_dir, "superpose_gpu_tests")
    with open(tests, "w") as script:
        script.write("#!/bin/sh\nexec '%s' --gtest_filter='Cuda*:Mappings/*' \"$@\"\n"
                     % os.path.join(build, "tests", "emulator", "superpose_emulated_tests"))
    os.chmod(tests, 0o755)
    with open(os.path.join(bin_dir, "BUILD.txt"), "w") as f:
        f.write("the main build's emulated binaries (tests/test_gpu_check.py rehearsal)\n")
    result, seconds, summary, members, documents = run_gpu_check(
        bin_dir, work, {"GPU_CHECK_EMULATED": "1", "GPU_CHECK_SMOKE": "1"})
    if result.returncode != 0:
        fail(f"exit status {result.returncode}:\n{summary}\n{result.stderr[-2000:]}")
    for stage in STAGES:
        if f"{stage}: ok in" not in summary:
            fail(f"{stage} did not pass:\n{summary}")
    if "[  PASSED  ]" not in summary or "[  FAILED  ]" in summary:
        fail(f"the GPU tests' counts are not in the summary, or one failed:\n{summary}")
    if "./results/gpu-tests-CUDA-emulator.xml" not in members:
        fail(f"no test report in the evidence: {members}")
    bench = json.loads(documents["./results/bench_kernels-CUDA-emulator.json"])
    if not bench["complete"] or not all(r["valid"] for r in bench["results"]):
        fail("the benchmark's JSON is incomplete or has an invalid variant")
    if "end to end: (2,1) sweep, 64 models" not in summary:
        fail(f"no end-to-end line:\n{summary}")
    if "tms: " not in summary or "results show what the paper reports" not in summary \
            or "./results/tms-CUDA-emulator.json" not in members:
        fail(f"no tms verdicts in the summary or the evidence:\n{summary}")
    print(f"ok: {seconds:.1f} s, every stage passed on the emulator, {len(members)} entries")
    return 0


if __name__ == "__main__":
    mode, where, work = sys.argv[1:4]
    sys.exit(no_device(where, work) if mode == "no-device" else rehearsal(where, work))
