#!/usr/bin/env python3
"""How long superpose.load takes on a large sweep, and the memory it needs (issue #30: "load a
100k-model sweep in seconds"): trains a sweep of MODELS models of FEATURES -> HIDDEN with the
command line (one step each: the training is not what is measured), then loads it with the Python
package in fresh processes and reports the fastest wall time, the peak resident memory and the
sizes on disk, as JSON.

usage: load_sweep.py SUPERPOSE_BINARY [--models 100000] [--features 20] [--hidden 5]
                     [--repeats 3] [--work DIR] [--out FILE.json]
(run with the Python that has the package installed; a benchmark, never a timed test)"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

LOAD = """
import json, resource, sys, time
start = time.perf_counter()
import superpose
imported = time.perf_counter()
sweep = superpose.load(sys.argv[1])
loaded = time.perf_counter()
assert sweep.W.shape[0] == int(sys.argv[2]), sweep
print(json.dumps({"import_s": imported - start, "load_s": loaded - imported,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("--models", type=int, default=100000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="superpose-load-")
    path = os.path.join(work, "sweep")
    try:
        start = time.perf_counter()
        subprocess.run([args.binary, "sweep", "--backend", "cpu", "--features", str(args.features),
                        "--hidden", str(args.hidden), "--steps", "1", "--data-mode", "fresh",
                        "--batch", "8", "--eval-points", "16", "--seed",
                        f"range(0,{args.models})", "--out", path, "--overwrite"],
                       check=True, stdout=subprocess.DEVNULL)
        written = time.perf_counter() - start
        runs = [json.loads(subprocess.run([sys.executable, "-c", LOAD, path, str(args.models)],
                                          check=True, capture_output=True, text=True).stdout)
                for _ in range(args.repeats)]
        result = {
            "what": "superpose.load of a sweep, fastest of the repeats, each in a fresh process",
            "models": args.models, "features": args.features, "hidden": args.hidden,
            "results_csv_mb": os.path.getsize(os.path.join(path, "results.csv")) / 2**20,
            "sweep_written_s": written,
            "load_s": min(r["load_s"] for r in runs),
            "import_s": min(r["import_s"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "cpu": cpu_name(), "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }
        import numpy
        import pandas
        result.update(numpy=numpy.__version__, pandas=pandas.__version__)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
