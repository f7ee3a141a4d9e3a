#!/usr/bin/env python3
"""The PyTorch peers are checked, not trusted: each trains small configurations from the same data
and initial parameters as superpose's `reference` backend (`train --data --init-W --init-b`), and
must end at the same W and b (float32 peers against the double reference: within 2e-4) and the same
final loss. Skipped, with the reason, where torch is not installed.

usage: test_peers.py BINARY WORK"""
import csv
import os
import subprocess
import sys
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts"))
try:
    import torch
    import torch_peers
except ImportError as error:  # reported as a skip, never as a pass
    torch = None
    SKIP = f"torch is not installed ({error}); scripts/python-deps --torch installs it"

BINARY = WORK = None

CONFIGS = [  # (name, n, m, relu, sparsity, importance, lr, steps)
    ("relu_2to1_sparse", 2, 1, True, 0.8, [1.0, 1.0], 1e-2, 300),
    ("linear_2to1_dense_unequal", 2, 1, False, 0.0, [1.0, 0.1], 1e-2, 300),
    ("relu_5to2_decay", 5, 2, True, 0.7, [0.9**f for f in range(5)], 5e-3, 200),
]


def reference(name, data, W0, b0, relu, importance, lr, steps):
    directory = os.path.join(WORK, name)
    os.makedirs(directory, exist_ok=True)
    for file, array in (("data.npy", data), ("W0.npy", W0), ("b0.npy", b0)):
        np.save(os.path.join(directory, file), array)
    out = os.path.join(directory, "reference")
    command = [BINARY, "train", "--backend", "reference", "--model", "relu" if relu else "linear",
               "--features", str(W0.shape[1]), "--hidden", str(W0.shape[0]), "--eval-fraction",
               "0", "--lr", repr(lr), "--steps", str(steps), "--importance",
               ",".join(repr(i) for i in importance), "--data",
               os.path.join(directory, "data.npy"), "--init-W", os.path.join(directory, "W0.npy"),
               "--init-b", os.path.join(directory, "b0.npy"), "--out", out]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(result.stdout + result.stderr)
    with open(os.path.join(out, "results.csv")) as f:
        row = next(csv.DictReader(f))
    n, m = W0.shape[1], W0.shape[0]
    W = np.array([[float(row[f"W_{j}_{f}"]) for f in range(n)] for j in range(m)])
    b = np.array([float(row[f"b_{f}"]) for f in range(n)])
    return W, b, float(row["train_loss"])


def final_loss(W, b, data, importance, relu):
    z = data @ W.T @ W + b
    y = np.maximum(z, 0) if relu else z
    return float(((data - y) ** 2 * importance).mean())


@unittest.skipIf(torch is None, SKIP if torch is None else "")
class PeersMatchTheReference(unittest.TestCase):
    def test_loop_peer(self):
        for k, (name, n, m, relu, s, importance, lr, steps) in enumerate(CONFIGS):
            with self.subTest(name):
                g = torch.Generator().manual_seed(k)
                data = torch_peers.make_data(1, 200, n, s, g, torch.float64)[0].float()
                W0 = torch_peers.xavier_normal(1, m, n, g)[0]
                b0 = torch.zeros(n)
                imp = torch.tensor(importance, dtype=torch.float32)
                W, b, _ = torch_peers.train_loop(W0, b0, imp, relu, lr, steps, data=data)
                W_ref, b_ref, loss_ref = reference("loop_" + name, data.numpy(), W0.numpy(),
                                                   b0.numpy(), relu, importance, lr, steps)
                np.testing.assert_allclose(W.numpy(), W_ref, atol=2e-4)
                np.testing.assert_allclose(b.numpy(), b_ref, atol=2e-4)
                self.assertAlmostEqual(final_loss(W.double().numpy(), b.double().numpy(),
                                                  data.double().numpy(), importance, relu),
                                       loss_ref, delta=1e-5 + 1e-3 * loss_ref)
                self.assertGreater(np.abs(W.numpy() - W0.numpy()).max(), 0.05)  # it trained

    def test_batched_peer_each_instance(self):
        name, n, m, relu, s, importance, lr, steps = CONFIGS[0]
        K = 3
        g = torch.Generator().manual_seed(7)
        data = torch_peers.make_data(K, 200, n, s, g)
        W0 = torch_peers.xavier_normal(K, m, n, g)
        b0 = torch.zeros(K, n)
        imp = torch.tensor([importance] * K, dtype=torch.float32)
        W, b, _ = torch_peers.train_batched(W0, b0, imp, relu, lr, steps, data=data)
        for i in range(K):
            with self.subTest(instance=i):
                W_ref, b_ref, _ = reference(f"batched_{i}", data[i].numpy(), W0[i].numpy(),
                                            b0[i].numpy(), relu, importance, lr, steps)
                np.testing.assert_allclose(W[i].numpy(), W_ref, atol=2e-4)
                np.testing.assert_allclose(b[i].numpy(), b_ref, atol=2e-4)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    BINARY, WORK = sys.argv[1], os.path.abspath(sys.argv[2])
    os.makedirs(WORK, exist_ok=True)
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[3:]])
