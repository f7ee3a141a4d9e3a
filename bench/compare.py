#!/usr/bin/env python3
"""compare.py — superpose against its two PyTorch peers (scripts/torch_peers.py), side by side on
this machine, in one run: a table of throughput (sample-steps/s) and the ratio superpose / best
peer, and whole jobs (the essay's six experiments over 100 seeds, a 2->1 phase diagram) as wall
time to finished results. Writes bench/results/<machine>.json (machine, commit, torch version).

superpose is timed by build/bench/bench_train (median of repeats of the whole backend->train(),
end to end) and, for whole jobs, as the wall time of the `superpose` command itself. The peers are
timed over a few hundred steps at most after a warm-up, and their per-step time is multiplied out
to the job's steps (extrapolated, and every such figure says so). Run it through bench/compare,
which builds and installs what is missing.
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"compare.py: {' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def gpu_name():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() \
            else None
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return None


def commit():
    try:
        head = run(["git", "-C", ROOT, "rev-parse", "HEAD"]).strip()
        dirty = subprocess.run(["git", "-C", ROOT, "diff", "--quiet", "HEAD"]).returncode != 0
        return head + ("-dirty" if dirty else "")
    except SystemExit:
        return "unknown"


def slug(text):
    text = re.sub(r"\((r|tm)\)", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


class Superpose:
    def __init__(self, build, backend, threads):
        self.bench = os.path.join(build, "bench", "bench_train")
        self.binary = os.path.join(build, "superpose")
        self.backend, self.threads = backend, threads

    def throughput(self, n, m, batch, models, mode, work):
        out = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
        command = [self.bench, "--backend", self.backend, "--n", str(n), "--m", str(m), "--batch",
                   str(batch), "--models", str(models), "--data-mode", mode, "--work", str(work),
                   "--repeats", "3", "--out", out]
        if self.threads:
            command += ["--threads", str(self.threads)]
        run(command)
        with open(out) as f:
            doc = json.load(f)
        os.unlink(out)
        self.device = doc["device"]
        return doc["results"][0]

    def job(self, arguments):
        with tempfile.TemporaryDirectory() as directory:
            command = [self.binary, *arguments, "--backend", self.backend, "--out",
                       os.path.join(directory, "run")]
            if self.threads:
                command += ["--threads", str(self.threads)]
            t0 = time.perf_counter()
            run(command)
            return time.perf_counter() - t0


class Peers:
    def __init__(self, python, device, threads):
        self.script = os.path.join(ROOT, "scripts", "torch_peers.py")
        self.python, self.device, self.threads = python, device, threads
        self.cache = {}

    def measure(self, peer, n, m, batch, models, mode, model="relu", sparsity=0.9,
                min_seconds=1.0, max_steps=300):
        # The loop peer trains one model whatever K is: time it once per shape and mode.
        key = (peer, n, m, batch, 1 if peer == "loop" else models, mode, model, sparsity)
        if key not in self.cache:
            command = [self.python, self.script, "bench", "--peer", peer, "--n", str(n), "--m",
                       str(m), "--batch", str(batch), "--models", str(key[4]), "--data-mode",
                       mode, "--model", model, "--sparsity", str(sparsity), "--device",
                       self.device, "--min-seconds", str(min_seconds), "--max-steps",
                       str(max_steps), "--min-steps", "3", "--warmup", "2"]
            if self.threads:
                command += ["--threads", str(self.threads)]
            self.cache[key] = json.loads(run(command).strip().splitlines()[-1])
        result = dict(self.cache[key])
        if peer == "loop":  # K models, one after the other
            result["seconds_per_step"] *= models / result["models"]
            result["models"] = models
            result["sample_steps_per_s"] = models * batch / result["seconds_per_step"]
            result["model_steps_per_s"] = models / result["seconds_per_step"]
            result["note"] = (f"one model timed over {result['timed_steps']} steps; {models} "
                              "models extrapolated as that many times its per-step time")
        return result


# TMS's feature-geometry shapes, a few models each (as its figures train them), fresh batches.
LARGE = [(100, 20, 1024, 20, "fresh"), (200, 20, 1024, 10, "fresh"), (400, 30, 1024, 10, "fresh")]


def parse_only(text):
    """--only "n,m,batch,models,mode;...": the configurations to run, in that order."""
    configs = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        fields = [field.strip() for field in item.split(",")]
        if len(fields) != 5 or fields[4] not in ("fixed", "fresh") or \
                not all(field.isdigit() and int(field) > 0 for field in fields[:4]):
            sys.exit(f"compare.py: --only: '{item}' is not n,m,batch,models,fixed|fresh "
                     "(e.g. '20,5,1024,100,fresh')")
        configs.append((*map(int, fields[:4]), fields[4]))
    if not configs:
        sys.exit("compare.py: --only names no configuration")
    return configs


def throughput_table(sp, peers, gpu, quick, large_only=False, only=None):
    configs = []
    for models in (1, 100, 1000, 10000):
        for mode in ("fixed", "fresh"):
            configs.append((2, 1, 800, models, mode))
    for models in (1, 100, 1000):
        for mode in ("fixed", "fresh"):
            configs.append((20, 5, 1024, models, mode))
    configs += LARGE
    if quick:
        configs = [c for c in configs if c[3] <= 100]
    if large_only:
        configs = LARGE
    if gpu:  # the goal of the large-shape path: 1,000 models at (400,30) on one GPU
        configs.append((400, 30, 1024, 1000, "fresh"))
    if only:
        configs = only
    rows = []
    print(f"{'n':>3} {'m':>3} {'batch':>5} {'models':>6} {'data':>5} {'superpose':>11} "
          f"{'torch loop':>11} {'torch batch':>11} {'ratio':>7}   (sample-steps/s)", flush=True)
    for n, m, batch, models, mode in configs:
        work = (4e10 if gpu else 1.5e9) if n == 2 else (4e9 if gpu else 2e8)
        if n >= 100:  # 5·m·n fused multiply-adds a sample: about 10-20 s a timed run on 2 cores
            work = 4e8 if gpu else 2e7
        ours = sp.throughput(n, m, batch, models, mode, work)
        loop = peers.measure("loop", n, m, batch, models, mode)
        batched = peers.measure("batched", n, m, batch, models, mode)
        best = max(loop["sample_steps_per_s"], batched["sample_steps_per_s"])
        ratio = ours["sample_steps_per_s"] / best
        print(f"{n:>3} {m:>3} {batch:>5} {models:>6} {mode:>5} {ours['sample_steps_per_s']:>11.3e} "
              f"{loop['sample_steps_per_s']:>11.3e} {batched['sample_steps_per_s']:>11.3e} "
              f"{ratio:>6.1f}x", flush=True)
        rows.append({"n": n, "m": m, "batch": batch, "models": models, "data_mode": mode,
                     "superpose": ours, "torch_loop": loop, "torch_batched": batched,
                     "ratio_to_best_peer": ratio})
    return rows


def experiments_job(sp, peers):
    """The essay's six experiments, 100 seeds each (1000 points, 800 train rows, full batch)."""
    experiments = [  # (kind, sparsity, steps) as host/studies/experiments.cpp
        ("linear", 0.0, 1500), ("linear", 0.0, 3300), ("linear", 0.8, 2500),
        ("linear", 0.8, 10000), ("relu", 0.8, 10000), ("relu", 0.0, 2500)]
    ours = sp.job(["experiments", "--seeds", "100"])
    loop = batched = 0.0
    for kind, sparsity, steps in experiments:
        loop += peers.measure("loop", 2, 1, 800, 100, "fixed", kind, sparsity,
                              min_seconds=0.5)["seconds_per_step"] * steps
        batched += peers.measure("batched", 2, 1, 800, 100, "fixed", kind, sparsity,
                                 min_seconds=0.5)["seconds_per_step"] * steps
    return {"job": "essay experiments: 6 x 100 seeds, 1000 points, 1500-10000 full-batch steps",
            "superpose_s": ours, "torch_loop_s": loop, "torch_batched_s": batched,
            "peers_note": "peers extrapolated: measured seconds per step x each experiment's steps "
                          "(the loop peer: x 100 seeds as well)",
            "ratio_to_best_peer": min(loop, batched) / ours}


def phase_diagram_job(sp, peers, gpu):
    if gpu:
        cells, seeds, steps, batch = 50, 10, 5000, 1024
    else:
        cells, seeds, steps, batch = 40, 4, 3000, 1024  # the CPU default of `phase-diagram`
    models = cells * cells * seeds
    ours = sp.job(["phase-diagram", "--importance-cells", str(cells), "--density-cells",
                   str(cells), "--seeds", str(seeds), "--steps", str(steps), "--batch",
                   str(batch)])
    batched = peers.measure("batched", 2, 1, batch, models, "fresh", sparsity=0.9,
                            min_seconds=2.0)["seconds_per_step"] * steps
    loop = peers.measure("loop", 2, 1, batch, models, "fresh", sparsity=0.9)["seconds_per_step"] \
        * steps
    return {"job": f"2->1 phase diagram: {cells} x {cells} cells x {seeds} seeds = {models} "
                   f"models x {steps} steps, batch {batch}, fresh data",
            "superpose_s": ours, "torch_loop_s": loop, "torch_batched_s": batched,
            "peers_note": "peers extrapolated: measured seconds per step x steps (the batched "
                          "peer with all models as instances; the loop peer x models)",
            "ratio_to_best_peer": min(loop, batched) / ours}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--backend", default=None, help="cpu | cuda (default: cuda if a GPU)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for both sides")
    parser.add_argument("--quick", action="store_true", help="only up to 100 models, no jobs")
    parser.add_argument("--large", action="store_true",
                        help="only the large shapes (100->20, 200->20, 400->30), no jobs")
    parser.add_argument("--only", help="only these configurations, in this order, no jobs: "
                        "'n,m,batch,models,fixed|fresh;...'")
    parser.add_argument("--out", help="results file (default bench/results/<machine>.json)")
    args = parser.parse_args()
    only = parse_only(args.only) if args.only is not None else None

    import torch  # noqa: F401  (the peers' version goes into the results)
    gpu = gpu_name()
    backend = args.backend or ("cuda" if gpu else "cpu")
    if backend == "cuda" and not gpu:
        sys.exit("compare.py: --backend cuda, but nvidia-smi names no GPU on this machine")
    device = "cuda" if backend == "cuda" else "cpu"
    sp = Superpose(args.build, backend, args.threads)
    peers = Peers(sys.executable, device, args.threads)
    cores = os.cpu_count()
    machine = slug(gpu) if backend == "cuda" else f"cpu-{cores}core-{slug(cpu_model())}"
    print(f"machine: {cpu_model()}, {cores} cores, GPU {gpu or 'none'}; superpose {backend}; "
          f"torch {torch.__version__} on {device} ({torch.get_num_threads()} threads)", flush=True)

    table = throughput_table(sp, peers, backend == "cuda", args.quick, args.large, only)
    jobs = []
    if not args.quick and not args.large and not only:
        for job in (experiments_job(sp, peers), phase_diagram_job(sp, peers, backend == "cuda")):
            jobs.append(job)
            print(f"{job['job']}: superpose {job['superpose_s']:.2f} s, torch loop "
                  f"{job['torch_loop_s']:.0f} s, torch batched {job['torch_batched_s']:.1f} s "
                  f"(peers extrapolated) -> {job['ratio_to_best_peer']:.0f}x", flush=True)

    doc = {"tool": "bench/compare.py",
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": {"cpu": cpu_model(), "cores": cores, "gpu": gpu},
           "commit": commit(), "torch": torch.__version__, "torch_device": device,
           "torch_threads": torch.get_num_threads(), "superpose_backend": backend,
           "superpose_device": getattr(sp, "device", None),
           "units": "sample-steps/s = models x rows per step x steps / seconds",
           "throughput": table, "jobs": jobs}
    out = args.out or os.path.join(ROOT, "bench", "results", f"{machine}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".tmp", "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(out + ".tmp", out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
