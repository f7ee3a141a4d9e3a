// bench_group.hpp — the sweep both benchmarks time: `models` ReLU models (or `kind`) of (n, m),
// sparsity 0.9 unless told (every feature), importance 1, lr 1e-3, seeds 0, 1, …; fixed data keeps
// `batch` training rows (of batch · 5/4 points), fresh data draws `batch` rows per step; no
// evaluation until the end.
#pragma once

#include "host/core/config.hpp"

namespace sp::bench {

inline GroupSpec make_group(int n, int m, DataMode mode, int batch, int models, int steps,
                            double sparsity = 0.9, ModelKind kind = ModelKind::relu) {
  GroupSpec g;
  g.n_features = n;
  g.n_hidden = m;
  g.mode = mode;
  g.batch = batch;
  g.points = batch + batch / 4;  // fixed: the first 80 % (= batch rows) train
  g.eval_fraction = 0.2;
  g.eval_points = 256;
  g.steps = steps;
  g.eval_every = 0;
  for (int i = 0; i < models; ++i) {
    ModelSpec model;
    model.seed = static_cast<uint64_t>(i);
    model.kind = kind;
    model.lr = 1e-3;
    model.sparsity.assign(n, sparsity);
    model.importance.assign(n, 1.0);
    g.models.push_back(model);
  }
  return g;
}

}  // namespace sp::bench
