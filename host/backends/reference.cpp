#include "host/backends/reference.hpp"

#include <cmath>

#include "host/backends/backend.hpp"
#include "host/core/data.hpp"
#include "host/core/job.hpp"
#include "host/core/recorder.hpp"

namespace sp::reference {

namespace {
std::vector<double> to_double(const std::vector<float>& values) {
  return std::vector<double>(values.begin(), values.end());
}
}  // namespace

Gradients loss_and_gradients(int n, int m, Activation act, const std::vector<double>& W,
                             const std::vector<double>& b, const std::vector<double>& importance,
                             const std::vector<double>& x_all, int rows) {
  Gradients out;
  out.grad_W.assign(static_cast<size_t>(m) * n, 0.0);
  out.grad_b.assign(n, 0.0);
  const double count = static_cast<double>(rows) * n;  // B · n
  std::vector<double> a(m), h(m), z(n), y(n), g_z(n), g_h(m);
  for (int r = 0; r < rows; ++r) {
    const double* x = &x_all[static_cast<size_t>(r) * n];
    // a = W x,  h = ReLU(a) (the neuron model) or a
    for (int j = 0; j < m; ++j) {
      a[j] = 0;
      for (int f = 0; f < n; ++f) a[j] += W[j * n + f] * x[f];
      h[j] = (act.hidden && a[j] <= 0) ? 0.0 : a[j];
    }
    // z = Wᵀ h + b,  y = ReLU(z) or z
    for (int f = 0; f < n; ++f) {
      z[f] = b[f];
      for (int j = 0; j < m; ++j) z[f] += W[j * n + f] * h[j];
      y[f] = (act.output && z[f] <= 0) ? 0.0 : z[f];
    }
    // L += I (x − y)²;  g_z = (2 / (B n)) · I ⊙ (y − x) ⊙ [z > 0]
    for (int f = 0; f < n; ++f) {
      out.loss += importance[f] * (x[f] - y[f]) * (x[f] - y[f]);
      const double mask = (act.output && !(z[f] > 0)) ? 0.0 : 1.0;
      g_z[f] = (2.0 / count) * importance[f] * (y[f] - x[f]) * mask;
    }
    // ∂b += g_z;  g_h = (W g_z) ⊙ [a > 0] (the mask for the neuron model);  ∂W += h g_zᵀ + g_h xᵀ
    for (int f = 0; f < n; ++f) out.grad_b[f] += g_z[f];
    for (int j = 0; j < m; ++j) {
      g_h[j] = 0;
      for (int f = 0; f < n; ++f) g_h[j] += W[j * n + f] * g_z[f];
      if (act.hidden && !(a[j] > 0)) g_h[j] = 0;
    }
    for (int j = 0; j < m; ++j)
      for (int f = 0; f < n; ++f) out.grad_W[j * n + f] += h[j] * g_z[f] + g_h[j] * x[f];
  }
  out.loss /= count;
  return out;
}

double loss(int n, int m, Activation act, const std::vector<double>& W,
            const std::vector<double>& b, const std::vector<double>& importance,
            const std::vector<double>& x, int rows) {
  if (rows == 0) return std::nan("");
  return loss_and_gradients(n, m, act, W, b, importance, x, rows).loss;
}

void adamw_step(std::vector<double>& param, std::vector<double>& adam_m,
                std::vector<double>& adam_v, const std::vector<double>& grad, double lr, int t,
                double weight_decay) {
  const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  const double bias1 = 1 - std::pow(beta1, t), bias2 = 1 - std::pow(beta2, t);
  for (size_t i = 0; i < param.size(); ++i) {
    param[i] *= 1 - lr * weight_decay;
    adam_m[i] = beta1 * adam_m[i] + (1 - beta1) * grad[i];
    adam_v[i] = beta2 * adam_v[i] + (1 - beta2) * grad[i] * grad[i];
    param[i] -= (lr / bias1) * adam_m[i] / (std::sqrt(adam_v[i]) / std::sqrt(bias2) + eps);
  }
}

ModelResult train(const GroupSpec& group, const ModelSpec& model) {
  const int n = group.n_features, m = group.n_hidden;
  const Activation act = activation_of(model.kind);
  const int rows = group.train_rows();
  std::vector<double> W = to_double(initial_W(group, model));
  std::vector<double> b = to_double(initial_b(group, model));
  std::vector<double> m_W(W.size(), 0.0), v_W(W.size(), 0.0), m_b(n, 0.0), v_b(n, 0.0);
  const std::vector<double> dataset = group.mode == DataMode::fixed
                                          ? to_double(fixed_dataset(group, model))
                                          : std::vector<double>{};
  const std::vector<double> evaluation = to_double(eval_set(group, model));
  auto evaluate = [&] {
    return loss(n, m, act, W, b, model.importance, evaluation, group.eval_rows());
  };

  ModelResult result;
  TrajectoryRecorder recorder(group, result);
  double last_batch_loss = 0;
  for (int t = 0; t < group.steps; ++t) {
    if (t % 64 == 0) {
      check_cancelled();
      report_steps(std::min(64, group.steps - t));
    }
    std::vector<double> fresh;
    if (group.mode == DataMode::fresh)
      fresh =
          to_double(generate_rows(model, n, static_cast<uint64_t>(t) * rows, rows, group.groups));
    const std::vector<double>& x = group.mode == DataMode::fixed ? dataset : fresh;
    const Gradients g = loss_and_gradients(n, m, act, W, b, model.importance, x, rows);
    const double lr = model.lr * AdamWSchedule::lr_factor(group.lr_schedule, group.warmup_steps,
                                                          group.steps, t + 1);
    adamw_step(W, m_W, v_W, g.grad_W, lr, t + 1, model.weight_decay);
    adamw_step(b, m_b, v_b, g.grad_b, lr, t + 1, model.weight_decay);
    last_batch_loss = g.loss;
    recorder.after_step(t, g.loss, W, b, evaluate);
  }
  const double train_loss = group.mode == DataMode::fixed
                                ? loss(n, m, act, W, b, model.importance, dataset, rows)
                                : last_batch_loss;
  finish_result(result, W, b, train_loss, evaluate(), group.eval_rows() > 0);
  return result;
}

namespace {
class ReferenceBackend final : public Backend {
 public:
  std::string name() const override { return "reference"; }
  std::string device() const override { return cpu_model_name() + " (1 thread, double)"; }
  std::vector<ModelResult> train(const GroupSpec& group) override {
    std::vector<ModelResult> results;
    results.reserve(group.models.size());
    for (const ModelSpec& model : group.models) results.push_back(reference::train(group, model));
    return results;
  }
};
}  // namespace

}  // namespace sp::reference

namespace sp {
std::unique_ptr<Backend> make_reference_backend() {
  return std::make_unique<reference::ReferenceBackend>();
}
}  // namespace sp
