"""bhyt-theory: derive, prove and numerically check the theory behind BHyT.

Layers (imports point one way, downwards):

- numerics: ``norms`` (the normalisers), ``model`` (the block stack), ``probes``, ``inputs``
- theory: symbolic derivations, mean-field predictions, rigorous bounds, proof checks
- experiments: Monte Carlo sweeps, one module per experiment, training
- pipeline: the studies, the claims registry, figures and the report
- cli: the ``bhyt-theory`` command line (also ``python -m bhyt_theory``)
"""

__version__ = "0.1.0"
