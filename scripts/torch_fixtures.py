#!/usr/bin/env python3
"""Writes the PyTorch fixtures the C++ tests compare against (tests/fixtures/).

1. torch_adamw.json: one AdamW step and 100 steps of the toy model (linear and ReLU, 5 -> 2; the
   neuron model, ARENA's NeuronModel, 5 -> 2 and 10 -> 5) from given data and initial parameters,
   with torch.optim.AdamW's defaults (weight decay 0.01), plus autograd's gradients at the start.
2. torch_schedules.json: the optimiser settings other codebases use, 100 steps of 5 -> 2 from given
   data and parameters: torch.optim.Adam (ARENA's: no weight decay), and AdamW with a weight decay
   of 0, 0.01 or 0.1 under a LambdaLR learning-rate schedule (constant, linear, cosine; with and
   without warm-up), the factor superpose's AdamWSchedule::lr_factor computes.
3. replay/expN/: the essay's experiments 1, 2, 3, 5, 6 exactly as its notebook runs them
   (t.manual_seed(44), generate_data, xavier_normal_ init, the randperm shuffle, full-batch AdamW):
   the shuffled data (train rows first), the initial W and b, and the final W, b and losses.

Run: python3 scripts/torch_fixtures.py [--out tests/fixtures] [--only adamw|schedules|replay]
(needs torch and numpy; scripts/python-deps --torch installs them into .venv)
"""
import argparse
import json
import math
import os

import numpy as np
import torch as t


def forward(W, b, x, relu, hidden_relu=False):
    h = x @ W.T
    if hidden_relu:  # the neuron model: h = ReLU(W x), a privileged basis
        h = t.relu(h)
    z = h @ W + b
    return t.relu(z) if relu else z


def loss_fn(x, y, importance):
    return ((x - y) ** 2 * importance).mean()


def adamw_fixture():
    rng = np.random.default_rng(2024)
    rows = 64
    cases = []
    for kind, n, m in (("linear", 5, 2), ("relu", 5, 2), ("neuron", 5, 2), ("neuron", 10, 5)):
        relu, hidden_relu = kind != "linear", kind == "neuron"
        x = rng.random((rows, n), dtype=np.float32)
        x[rng.random((rows, n)) < 0.5] = 0.0
        W0 = rng.normal(0, 0.6, (m, n)).astype(np.float32)
        b0 = rng.normal(0, 0.1, n).astype(np.float32)
        importance = (0.9 ** np.arange(n)).astype(np.float32)
        lr = 1e-2
        W = t.nn.Parameter(t.tensor(W0))
        b = t.nn.Parameter(t.tensor(b0))
        xt, it = t.tensor(x), t.tensor(importance)
        opt = t.optim.AdamW([W, b], lr=lr)
        record = {}
        losses = []
        for step in range(1, 101):
            opt.zero_grad()
            loss = loss_fn(xt, forward(W, b, xt, relu, hidden_relu), it)
            loss.backward()
            if step == 1:
                record["grad_W"] = W.grad.detach().numpy().ravel().tolist()
                record["grad_b"] = b.grad.detach().numpy().ravel().tolist()
            losses.append(loss.item())
            opt.step()
            if step in (1, 100):
                record[f"W_{step}"] = W.detach().numpy().ravel().tolist()
                record[f"b_{step}"] = b.detach().numpy().ravel().tolist()
        cases.append({
            "model": kind, "n": n, "m": m, "rows": rows, "lr": lr,
            "x": x.ravel().tolist(), "W0": W0.ravel().tolist(), "b0": b0.ravel().tolist(),
            "importance": importance.tolist(), "losses": losses, **record,
        })
    return {"torch_version": t.__version__, "cases": cases}


def lr_factor(schedule, warmup, steps, s):
    """The learning rate's factor at 0-based step s: superpose's AdamWSchedule::lr_factor."""
    if s < warmup:
        return (s + 1) / warmup
    u, total = s - warmup, steps - warmup
    if schedule == "linear":
        return 1.0 - u / total
    if schedule == "cosine":
        return math.cos(0.5 * math.pi * u / (total - 1)) if total > 1 else 1.0
    return 1.0


SCHEDULE_CASES = [  # (optimizer, weight decay, schedule, warm-up steps)
    ("adam", 0.0, "constant", 0),
    ("adamw", 0.0, "linear", 0),
    ("adamw", 0.01, "linear", 10),
    ("adamw", 0.1, "cosine", 0),
    ("adamw", 0.01, "cosine", 25),
]


def schedules_fixture():
    rng = np.random.default_rng(2026)
    n, m, rows, steps, lr = 5, 2, 64, 100, 1e-2
    x = rng.random((rows, n), dtype=np.float32)
    x[rng.random((rows, n)) < 0.5] = 0.0
    W0 = rng.normal(0, 0.6, (m, n)).astype(np.float32)
    b0 = rng.normal(0, 0.1, n).astype(np.float32)
    importance = (0.9 ** np.arange(n)).astype(np.float32)
    xt, it = t.tensor(x), t.tensor(importance)
    cases = []
    for optimizer, weight_decay, schedule, warmup in SCHEDULE_CASES:
        W = t.nn.Parameter(t.tensor(W0))
        b = t.nn.Parameter(t.tensor(b0))
        if optimizer == "adam":
            opt = t.optim.Adam([W, b], lr=lr)
        else:
            opt = t.optim.AdamW([W, b], lr=lr, weight_decay=weight_decay)
        scheduler = t.optim.lr_scheduler.LambdaLR(
            opt, lambda s, sc=schedule, w=warmup: lr_factor(sc, w, steps, s))
        losses = []
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_fn(xt, forward(W, b, xt, True), it)
            loss.backward()
            losses.append(loss.item())
            opt.step()
            scheduler.step()
        cases.append({"optimizer": optimizer, "weight_decay": weight_decay, "schedule": schedule,
                      "warmup": warmup, "losses": losses,
                      "W": W.detach().numpy().ravel().tolist(),
                      "b": b.detach().numpy().ravel().tolist()})
    return {"torch_version": t.__version__, "model": "relu", "n": n, "m": m, "rows": rows,
            "steps": steps, "lr": lr, "x": x.ravel().tolist(), "W0": W0.ravel().tolist(),
            "b0": b0.ravel().tolist(), "importance": importance.tolist(), "cases": cases}


# The essay's notebook, verbatim in what it computes.
def generate_data(n_points=1000, n_features=2, sparsity=0.0):
    sparsity_mask = t.rand(n_points, n_features) < sparsity
    x = t.rand(n_points, n_features)
    x[sparsity_mask] = 0
    return x


ESSAY = {  # number: (relu, sparsity, importances, lr, epochs)
    1: (False, 0.0, [1.0, 1.0], 1e-3, 1500),
    2: (False, 0.0, [1.0, 0.1], 1e-3, 3300),
    3: (False, 0.8, [1.0, 0.1], 1e-3, 2500),
    5: (True, 0.8, [1.0, 1.0], 3e-4, 10000),
    6: (True, 0.0, [1.0, 1.0], 1e-3, 2500),
}


def replay_fixture(number, out_dir):
    relu, sparsity, importances, lr, epochs = ESSAY[number]
    t.manual_seed(44)
    importance = t.tensor(importances)
    x = generate_data(sparsity=sparsity)
    W = t.empty(1, 2)
    b = t.empty(2)
    t.nn.init.xavier_normal_(W)
    t.nn.init.zeros_(b)
    W, b = t.nn.Parameter(W), t.nn.Parameter(b)
    W0, b0 = W.detach().clone(), b.detach().clone()
    indices = t.randperm(len(x))
    x_shuffled = x[indices]
    n_train = int(len(x) * (1 - 0.2))
    x_train, x_eval = x_shuffled[:n_train], x_shuffled[n_train:]
    opt = t.optim.AdamW([W, b], lr=lr)
    for _ in range(epochs):
        opt.zero_grad()
        loss = loss_fn(x_train, forward(W, b, x_train, relu), importance)
        loss.backward()
        opt.step()
    with t.no_grad():
        train_loss = loss_fn(x_train, forward(W, b, x_train, relu), importance).item()
        eval_loss = loss_fn(x_eval, forward(W, b, x_eval, relu), importance).item()
    d = os.path.join(out_dir, f"exp{number}")
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "data.npy"), x_shuffled.numpy().astype(np.float32))
    np.save(os.path.join(d, "init_W.npy"), W0.numpy().astype(np.float32))
    np.save(os.path.join(d, "init_b.npy"), b0.numpy().astype(np.float32))
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"torch_version": t.__version__, "experiment": number,
                   "model": "relu" if relu else "linear", "sparsity": sparsity,
                   "importance": importances, "lr": lr, "steps": epochs,
                   "W": W.detach().numpy().ravel().tolist(), "b": b.detach().numpy().tolist(),
                   "train_loss": train_loss, "eval_loss": eval_loss}, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    parser.add_argument("--only", choices=["adamw", "schedules", "replay"])
    args = parser.parse_args()
    t.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    if args.only in (None, "adamw"):
        with open(os.path.join(args.out, "torch_adamw.json"), "w") as f:
            json.dump(adamw_fixture(), f)
    if args.only in (None, "schedules"):
        with open(os.path.join(args.out, "torch_schedules.json"), "w") as f:
            json.dump(schedules_fixture(), f)
    if args.only in (None, "replay"):
        for number in ESSAY:
            replay_fixture(number, os.path.join(args.out, "replay"))
    print(f"wrote fixtures with torch {t.__version__} to {os.path.normpath(args.out)}")


if __name__ == "__main__":
    main()
