#!/usr/bin/env python3
"""torch_peers.py — the two PyTorch trainers superpose is measured against (issue: benchmarks).

Both train the toy model of docs/design.md §1 with the same data rules (§2: each feature uniform on
[0, 1), zero with probability s) and torch.optim.AdamW with its defaults (weight decay 0.01):

  loop     the essay's way: one model, a Python loop of full-batch steps
           (y = relu(x @ W.T @ W + b); loss = ((x - y)**2 * importance).mean()).
  batched  the way of Anthropic's toy-models notebook: a leading "instances" dimension on W (K, m, n)
           and b (K, n); one step trains all K models (bmm forward, loss = per-instance mean summed
           over instances, so each instance gets its own mean-loss gradient).

Data: `fixed` keeps one dataset per model for every step; `fresh` draws a new batch every step with
torch.rand. The peers use torch's own random numbers, so they match superpose in distribution, not
bit for bit; tests/test_peers.py checks them on identical data and initial parameters instead.

  torch_peers.py bench --peer loop|batched --n 2 --m 1 --batch 800 --models 100 --data-mode fixed
      times steps after a warm-up and prints one JSON line: seconds per step and sample-steps/s.
      The loop peer trains one model; K models cost K times its per-step time (extrapolated, and
      the JSON says so).
"""
import argparse
import json
import time

import torch


def make_data(models, rows, n, sparsity, generator=None, dtype=torch.float32, device=None):
    """(models, rows, n): uniform values, each exactly 0 with probability `sparsity`."""
    device = generator.device if generator is not None else device
    values = torch.rand((models, rows, n), generator=generator, dtype=dtype, device=device)
    keep = torch.rand((models, rows, n), generator=generator, dtype=dtype, device=device)
    return values * (keep >= sparsity)


def xavier_normal(models, m, n, generator=None, dtype=torch.float32):
    return torch.randn((models, m, n), generator=generator, dtype=dtype) * (2.0 / (n + m)) ** 0.5


def train_loop(W, b, importance, relu, lr, steps, data=None, sparsity=None, batch=None,
               generator=None, hidden_relu=False):
    """The essay's trainer: one model. W (m, n), b (n,), importance (n,); `data` (rows, n) for
    fixed data, else fresh batches of `batch` rows with `sparsity` (n,). Returns W, b, losses."""
    W = W.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    optimizer = torch.optim.AdamW([W, b], lr=lr)
    losses = []
    for _ in range(steps):
        x = data if data is not None else make_data(1, batch, W.shape[1], sparsity, generator,
                                                     W.dtype, W.device)[0]
        h = x @ W.T
        if hidden_relu:  # the neuron model (ARENA's NeuronModel): h = ReLU(W x)
            h = torch.relu(h)
        z = h @ W + b
        y = torch.relu(z) if relu else z
        loss = ((x - y) ** 2 * importance).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return W.detach(), b.detach(), losses


def train_batched(W, b, importance, relu, lr, steps, data=None, sparsity=None, batch=None,
                  generator=None, record_losses=True, hidden_relu=False):
    """Anthropic's batched trainer: W (K, m, n), b (K, n), importance (K, n); `data` (K, rows, n)
    for fixed data, else fresh batches of `batch` rows with `sparsity` (K, n)."""
    W = W.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    optimizer = torch.optim.AdamW([W, b], lr=lr)
    weights = importance[:, None, :]
    losses = []
    for _ in range(steps):
        if data is not None:
            x = data
        else:
            x = make_data(W.shape[0], batch, W.shape[2], 0.0, generator, W.dtype, W.device)
            x = x * (torch.rand(x.shape, generator=generator, dtype=W.dtype, device=W.device)
                     >= sparsity[:, None, :])
        hidden = torch.bmm(x, W.transpose(1, 2))  # (K, B, m)
        if hidden_relu:  # the neuron model (ARENA's NeuronModel): h = ReLU(W x)
            hidden = torch.relu(hidden)
        z = torch.bmm(hidden, W) + b[:, None, :]  # (K, B, n)
        y = torch.relu(z) if relu else z
        per_model = ((x - y) ** 2 * weights).mean(dim=(1, 2))
        loss = per_model.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if record_losses:
            losses.append(per_model.detach().clone())
    return W.detach(), b.detach(), losses


def bench(args):
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    n, m, K, B = args.n, args.m, args.models, args.batch
    sparsity = args.sparsity
    relu = args.model in ("relu", "neuron")
    hidden_relu = args.model == "neuron"
    trained = 1 if args.peer == "loop" else K
    W = xavier_normal(trained, m, n).to(device)
    b = torch.zeros(trained, n, device=device)
    importance = torch.ones(trained, n, device=device)
    fixed = args.data_mode == "fixed"
    data = make_data(trained, B, n, sparsity).to(device) if fixed else None
    sparsities = torch.full((trained, n), sparsity, device=device)
    generator = torch.Generator(device=device).manual_seed(0)

    def run(steps):
        if args.peer == "loop":
            train_loop(W[0], b[0], importance[0], relu, 1e-3, steps,
                       data=data[0] if fixed else None, sparsity=sparsities[0], batch=B,
                       generator=generator, hidden_relu=hidden_relu)
        else:
            train_batched(W, b, importance, relu, 1e-3, steps, data=data, sparsity=sparsities,
                          batch=B, generator=generator, record_losses=False,
                          hidden_relu=hidden_relu)
        if device.type == "cuda":
            torch.cuda.synchronize()

    run(args.warmup)
    # Calibrate a chunk of steps that takes about min_seconds / repeats, then time `repeats`
    # chunks and keep the median per-step time (as bench_train keeps the median of its repeats).
    t0 = time.perf_counter()
    run(args.min_steps)
    guess = (time.perf_counter() - t0) / args.min_steps
    chunk = int(min(args.max_steps, max(args.min_steps, args.min_seconds / args.repeats / guess)))
    per_steps = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        run(chunk)
        per_steps.append((time.perf_counter() - t0) / chunk)
    per_step = sorted(per_steps)[len(per_steps) // 2]
    steps = chunk * args.repeats
    if args.peer == "loop":
        per_step_all = per_step * K  # K models one after the other
        note = (f"one model: median of {args.repeats} x {chunk} steps; {K} models = {K} x its "
                "per-step time")
    else:
        per_step_all = per_step
        note = f"{K} instances: median of {args.repeats} x {chunk} steps"
    print(json.dumps({
        "peer": args.peer, "n": n, "m": m, "batch": B, "models": K, "data_mode": args.data_mode,
        "timed_steps": steps, "seconds_per_step": per_step_all,
        "sample_steps_per_s": K * B / per_step_all, "model_steps_per_s": K / per_step_all,
        "model": args.model, "device": args.device, "note": note, "torch": torch.__version__,
        "threads": torch.get_num_threads()}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="time one configuration, print one JSON line")
    b.add_argument("--peer", choices=["loop", "batched"], required=True)
    b.add_argument("--n", type=int, default=2)
    b.add_argument("--m", type=int, default=1)
    b.add_argument("--batch", type=int, default=800)
    b.add_argument("--models", type=int, default=1)
    b.add_argument("--data-mode", choices=["fixed", "fresh"], default="fixed")
    b.add_argument("--model", choices=["linear", "relu", "neuron"], default="relu")
    b.add_argument("--sparsity", type=float, default=0.9)
    b.add_argument("--device", default="cpu", help="cpu or cuda")
    b.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    b.add_argument("--warmup", type=int, default=3)
    b.add_argument("--min-steps", type=int, default=5)
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--max-steps", type=int, default=2000)
    b.add_argument("--min-seconds", type=float, default=1.0)
    args = parser.parse_args()
    bench(args)


if __name__ == "__main__":
    main()
