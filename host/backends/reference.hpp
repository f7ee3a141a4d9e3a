// reference.hpp — the oracle: double precision, one model at a time, plain loops that read like
// docs/design.md §1 line by line.
#pragma once

#include <vector>

#include "host/core/config.hpp"
#include "host/core/data.hpp"  // kWeightDecay

namespace sp::reference {

struct Gradients {
  double loss = 0;             // L = (1 / (B n)) Σ_samples Σ_f I_f (x_f − y_f)²
  std::vector<double> grad_W;  // m x n
  std::vector<double> grad_b;  // n
};

// L and its analytic gradients over `rows` samples x (rows x n, row-major).
Gradients loss_and_gradients(int n, int m, Activation act, const std::vector<double>& W,
                             const std::vector<double>& b, const std::vector<double>& importance,
                             const std::vector<double>& x, int rows);

double loss(int n, int m, Activation act, const std::vector<double>& W,
            const std::vector<double>& b, const std::vector<double>& importance,
            const std::vector<double>& x, int rows);

// torch.optim.AdamW, step t (1-based), on one parameter tensor: learning rate lr (this step's,
// a schedule's factor applied), weight decay `weight_decay`, torch's other defaults.
void adamw_step(std::vector<double>& param, std::vector<double>& adam_m,
                std::vector<double>& adam_v, const std::vector<double>& grad, double lr, int t,
                double weight_decay = kWeightDecay);

ModelResult train(const GroupSpec& group, const ModelSpec& model);

}  // namespace sp::reference
