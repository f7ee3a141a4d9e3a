#include "host/core/analysis.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sp::analysis {

std::string phase_2to1(double w1, double w2) {
  const double a = std::abs(w1), c = std::abs(w2), big = std::max(a, c);
  if (!(big >= 0.1)) return "other";
  if (c < 0.1 * a) return "ignored";
  if (a < 0.1 * c) return "dedicated";
  if (w1 * w2 < 0 && std::min(a, c) > 0.5 * big) return "antipodal";
  return "other";
}

FeatureGeometry feature_geometry(const std::vector<double>& W, int n, int m) {
  FeatureGeometry g;
  g.norm.assign(n, 0.0);
  g.interference.assign(n, 0.0);
  g.dimensionality.assign(n, 0.0);
  double frobenius_sq = 0;
  for (double w : W) frobenius_sq += w * w;
  g.dimensions_per_feature =
      frobenius_sq > 0 ? m / frobenius_sq : std::numeric_limits<double>::infinity();
  auto dot = [&](int f, int k) {
    double sum = 0;
    for (int j = 0; j < m; ++j) sum += W[j * n + f] * W[j * n + k];
    return sum;
  };
  for (int f = 0; f < n; ++f) g.norm[f] = std::sqrt(dot(f, f));
  for (int f = 0; f < n; ++f) {
    if (g.norm[f] == 0) continue;
    double all = 0;
    for (int k = 0; k < n; ++k) {
      const double projection = dot(f, k) / g.norm[f];  // Ŵ_f · W_k
      all += projection * projection;
      if (k != f) g.interference[f] += projection * projection;
    }
    g.dimensionality[f] = g.norm[f] * g.norm[f] / all;
  }
  return g;
}

}  // namespace sp::analysis
