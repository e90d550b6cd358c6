"""Proof-step checks, one module per written proof in ``proofs/``.

Importing this package registers every check in ``registry.CHECKS``.
"""

from . import (  # noqa: F401  (imported to register their checks)
    backward_pass,
    bounded_argument,
    correlation_estimator,
    decode_precomputation,
    depth_bound,
    gaussian_typical_case,
    jacobian,
    moment_series,
    output_bound,
    position_estimator,
    saturation_bound,
    scale_invariance,
    trained_parameters,
    variance_approximation,
)
from .registry import (
    CHECK_KINDS,
    CHECKS,
    COVERS,
    KINDS,
    PROOF_SECTIONS,
    PROOFS_DIR,
    check_references,
    proof_sections,
    run_checks,
    statement_numbers,
)

__all__ = ["CHECKS", "CHECK_KINDS", "COVERS", "KINDS", "PROOF_SECTIONS", "PROOFS_DIR", "check_references",
           "proof_sections", "run_checks", "statement_numbers"]
