"""Normalizations: the registry (the one place that knows norm names) and its entries."""

from normbench.norms import builtin  # noqa: F401  (registers the standard norms)
from normbench.norms import reference  # noqa: F401  (registers norm.impl=reference)
from normbench.norms import variants  # noqa: F401  (registers batch_renorm, ghost_batch)
from normbench.norms.diagnostics import precise_bn_, running_stats_drift
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
from normbench.norms.variants import BatchRenorm, GhostBatchNorm
from normbench.norms.weight_std import standardize_conv_weights

__all__ = [
    "BatchRenorm", "GhostBatchNorm", "fold_batchnorm", "precise_bn_", "running_stats_drift",
    "standardize_conv_weights",
    "NORMS", "NormBuilder", "NormSpec", "StepNorm", "batch_statistics_modules", "check_batch", "check_layout",
    "check_model_norms", "get_norm_spec", "norm_builder", "register_impl", "register_norm",
]
