"""Normalizations: the registry (the one place that knows norm names) and its entries."""

from normbench.norms import (  # noqa: F401  (importing registers their entries)
    builtin,  # the standard norms
    custom,  # norm=custom: the user's own
    reference,  # norm.impl=reference
    remedies,  # frn, evonorm_b0, evonorm_s0, rms
    variants,  # batch_renorm, ghost_batch
)
from normbench.norms.diagnostics import batch_noise, precise_bn_, running_stats_drift
from normbench.norms.fold import fold_batchnorm
from normbench.norms.registry import (
    NORMS,
    RUNNER_KEYS,
    NormBuilder,
    NormSpec,
    StepNorm,
    batch_statistics_modules,
    check_batch,
    check_forward,
    check_layout,
    check_model_norms,
    get_norm_spec,
    make_options,
    norm_builder,
    norm_properties,
    norm_style,
    paper_norm,
    register_impl,
    register_norm,
)
from normbench.norms.variants import BatchRenorm, GhostBatchNorm
from normbench.norms.weight_std import standardize_conv_weights

__all__ = [
    "NORMS",
    "BatchRenorm",
    "GhostBatchNorm",
    "NormBuilder",
    "NormSpec",
    "StepNorm",
    "batch_noise",
    "batch_statistics_modules",
    "check_batch",
    "check_forward",
    "check_layout",
    "check_model_norms",
    "RUNNER_KEYS",
    "fold_batchnorm",
    "get_norm_spec",
    "make_options",
    "norm_builder",
    "norm_properties",
    "norm_style",
    "paper_norm",
    "precise_bn_",
    "register_impl",
    "register_norm",
    "running_stats_drift",
    "standardize_conv_weights",
]
