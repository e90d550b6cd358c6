"""Experiments: Monte Carlo across depth, growth laws, the variance study, bound
tightness, block Jacobians and benchmarks."""
