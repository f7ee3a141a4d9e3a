// analysis.hpp — what a trained W means: the 2→1 phase, Anthropic's per-feature geometry, and the
// essay's outcomes. Thresholds are stated here and in README.md.
#pragma once

#include <string>
#include <vector>

namespace sp::analysis {

// 2 features, 1 hidden: W = [w1, w2] (feature 2 is the one whose importance a phase diagram
// varies).
//   ignored:   |w2| < 0.1 |w1|          (feature 2 left to the bias)
//   dedicated: |w1| < 0.1 |w2|          (the hidden number belongs to feature 2)
//   antipodal: w1 w2 < 0 and min(|w1|, |w2|) > 0.5 max(|w1|, |w2|)   (superposition)
//   other:     anything else, e.g. both same sign (the "confused" W1 ≈ W2) or a collapsed W
//              (max |w| < 0.1)
std::string phase_2to1(double w1, double w2);

// Anthropic's "Toy Models of Superposition" geometry for W (m x n, row-major; W_f is column f):
//   norm_f = ‖W_f‖, interference_f = Σ_{j≠f} (Ŵ_f · W_j)², dimensionality_f = ‖W_f‖² / Σ_j
//   (Ŵ_f·W_j)² (0 for a feature with W_f = 0), and dimensions_per_feature = m / ‖W‖_F².
struct FeatureGeometry {
  std::vector<double> norm, interference, dimensionality;
  double dimensions_per_feature = 0;
};
FeatureGeometry feature_geometry(const std::vector<double>& W, int n, int m);

}  // namespace sp::analysis
