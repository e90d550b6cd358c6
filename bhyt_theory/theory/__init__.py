"""Theory: symbolic derivations, rigorous bounds, the mean field, and the checks
that tie each step of a written proof to a computation."""
