// The reference's analytic gradients against central finite differences of its own loss, in
// double, for the linear, ReLU and neuron (hidden ReLU) models, (n, m) in {(2,1), (5,2), (20,5)},
// dense and sparse data.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <tuple>

#include "host/backends/reference.hpp"
#include "host/core/data.hpp"

namespace sp {
namespace {

struct Problem {
  int n, m, rows;
  Activation act;
  std::vector<double> W, b, importance, x;
};

Problem make_problem(int n, int m, ModelKind kind, double sparsity, unsigned seed) {
  Problem p{n, m, 64, activation_of(kind), {}, {}, {}, {}};
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 0.7);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int k = 0; k < m * n; ++k) p.W.push_back(normal(rng));
  // The neuron model: row 0 of W with a positive and a negative entry, so that its hidden
  // pre-activation a_0 = W_0 x takes both signs over the rows (the mask passes some, stops others).
  if (kind == ModelKind::neuron) p.W[0] = std::abs(p.W[0]), p.W[n - 1] = -std::abs(p.W[n - 1]);
  // A bias away from 0 keeps z off the ReLU's kink for all-zero samples.
  for (int f = 0; f < n; ++f) p.b.push_back(uniform(rng) - 0.5);
  for (int f = 0; f < n; ++f) p.importance.push_back(std::pow(0.9, f));
  for (int k = 0; k < p.rows * n; ++k) p.x.push_back(uniform(rng) < sparsity ? 0.0 : uniform(rng));
  return p;
}

double loss_of(const Problem& p) {
  return reference::loss(p.n, p.m, p.act, p.W, p.b, p.importance, p.x, p.rows);
}

using Case = std::tuple<int, int, ModelKind, double>;  // n, m, kind, sparsity
class ReferenceGradients : public ::testing::TestWithParam<Case> {};

TEST_P(ReferenceGradients, MatchCentralFiniteDifferences) {
  const auto [n, m, kind, sparsity] = GetParam();
  Problem p = make_problem(n, m, kind, sparsity, 17u + static_cast<unsigned>(n * 10 + m));
  const reference::Gradients g =
      reference::loss_and_gradients(p.n, p.m, p.act, p.W, p.b, p.importance, p.x, p.rows);
  EXPECT_DOUBLE_EQ(g.loss, loss_of(p));
  // Central differences have error O(h²) on this piecewise-polynomial loss; a step of 1e-6 crosses
  // a ReLU kink only where some z (or hidden a = W x) is within 1e-6 of 0, which these random
  // problems avoid (an all-zero x keeps a = 0 whatever W is: no kink crossed).
  if (p.act.hidden) {  // the hidden ReLU's mask is exercised: some a > 0 and some a < 0
    int positive = 0, negative = 0;
    for (int r = 0; r < p.rows; ++r)
      for (int j = 0; j < m; ++j) {
        double a = 0;
        for (int f = 0; f < n; ++f) a += p.W[j * n + f] * p.x[r * n + f];
        positive += a > 0;
        negative += a < 0;
      }
    EXPECT_GT(positive, 0);
    EXPECT_GT(negative, 0);
  }
  const double h = 1e-6;
  auto check = [&](std::vector<double>& params, const std::vector<double>& analytic,
                   const char* name) {
    for (size_t k = 0; k < params.size(); ++k) {
      const double saved = params[k];
      params[k] = saved + h;
      const double up = loss_of(p);
      params[k] = saved - h;
      const double down = loss_of(p);
      params[k] = saved;
      const double numeric = (up - down) / (2 * h);
      EXPECT_NEAR(analytic[k], numeric, 1e-7 + 1e-6 * std::abs(numeric)) << name << "[" << k << "]";
    }
  };
  check(p.W, g.grad_W, "grad_W");
  check(p.b, g.grad_b, "grad_b");
}

INSTANTIATE_TEST_SUITE_P(Shapes, ReferenceGradients,
                         ::testing::Combine(::testing::Values(2, 5, 20), ::testing::Values(1, 2, 5),
                                            ::testing::Values(ModelKind::linear, ModelKind::relu,
                                                              ModelKind::neuron),
                                            ::testing::Values(0.0, 0.8)),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           return "n" + std::to_string(std::get<0>(param_info.param)) + "_m" +
                                  std::to_string(std::get<1>(param_info.param)) + "_" +
                                  to_string(std::get<2>(param_info.param)) +
                                  (std::get<3>(param_info.param) > 0 ? "_sparse" : "_dense");
                         });

TEST(ReferenceAdamW, FirstStepMovesEveryParameterByLrAgainstTheGradientSign) {
  // At t = 1, m̂ = g and v̂ = g², so the update is lr · g / (|g| + eps) after the decay.
  std::vector<double> p{1.0, -2.0, 0.5}, m(3, 0.0), v(3, 0.0);
  const std::vector<double> g{0.3, -0.01, 2.0};
  reference::adamw_step(p, m, v, g, 0.1, 1);
  EXPECT_NEAR(p[0], 1.0 * (1 - 0.1 * 0.01) - 0.1, 1e-7);
  EXPECT_NEAR(p[1], -2.0 * (1 - 0.1 * 0.01) + 0.1, 1e-6);
  EXPECT_NEAR(p[2], 0.5 * (1 - 0.1 * 0.01) - 0.1, 1e-7);
}

}  // namespace
}  // namespace sp
