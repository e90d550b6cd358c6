"""bhyt-theory: derive, prove and numerically check the theory behind BHyT.

Layers (imports point one way, downwards):

- numerics: ``norms`` (the normalisers), ``model`` (the block stack), ``probes``
- theory: symbolic derivations, mean-field predictions, rigorous bounds
- experiments: Monte Carlo sweeps, training, efficiency
- top: claims registry, ``report``, ``cli``
"""

__version__ = "0.1.0"
