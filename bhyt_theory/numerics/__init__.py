"""Numerics: the normalisers, BHyT's estimators, the block stack with every scheme,
its inputs, the probes that measure it, and Gaussian quadrature."""
