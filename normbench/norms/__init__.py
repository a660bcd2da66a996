"""Normalizations: the registry (the one place that knows norm names) and its entries."""

from normbench.norms import builtin  # noqa: F401  (registers the standard norms)
from normbench.norms import reference  # noqa: F401  (registers norm.impl=reference)
from normbench.norms.fold import fold_batchnorm
from normbench.norms.registry import (
    NORMS,
    NormBuilder,
    NormSpec,
    StepNorm,
    batch_statistics_modules,
    check_batch,
    check_layout,
    check_model_norms,
    get_norm_spec,
    norm_builder,
    register_impl,
    register_norm,
)

__all__ = [
    "fold_batchnorm",
    "NORMS", "NormBuilder", "NormSpec", "StepNorm", "batch_statistics_modules", "check_batch", "check_layout",
    "check_model_norms", "get_norm_spec", "norm_builder", "register_impl", "register_norm",
]
