"""Published numbers the reports compare against (see SOURCES.md, "Papers the articles point to").

These are the papers' numbers, not ours: figures and tables label them as such. Keys are the
papers' names of the norms ("BN", "GN"), which each registered norm declares
(``norms.NormSpec.paper``) and each run records, so they line up with the data without naming
any norm of ours; values are top-1 error or accuracy in percent, exactly as published.
"""

from __future__ import annotations

GN_PAPER = "Wu & He, Group Normalization (2018), ResNet-50 on ImageNet"
CIFAR_REPRO = "public CIFAR-10 ResNet reproduction (5 seeds, 100 epochs, lr 0.1*B/32)"
BR_PAPER = "Ioffe, Batch Renormalization (2017), as reported in the GroupNorm paper"

# Top-1 validation error (%) at 32 images per GPU, GN paper Table 1.
GN_PAPER_ERROR_AT_32: dict[str, float] = {"BN": 23.6, "LN": 25.3, "IN": 28.4, "GN": 24.1}

# Top-1 error (%) against images per GPU, GN paper Figure 1 / Table 2.
GN_PAPER_ERROR_VS_BATCH: dict[str, dict[int, float]] = {
    "BN": {32: 23.6, 16: 23.7, 8: 24.8, 4: 27.3, 2: 34.7},
    "GN": {32: 24.1, 16: 24.2, 8: 24.0, 4: 24.2, 2: 24.1},
}

# Top-1 error (%) of GN against the number of groups (32 images per GPU), GN paper Table 3.
GN_PAPER_ERROR_VS_GROUPS: dict[int, float] = {
    64: 24.6,
    32: 24.1,
    16: 24.6,
    8: 24.4,
    4: 24.6,
    2: 24.7,
    1: 25.3,
}

# Batch Renormalization at 4 images per GPU, with BN and GN at the same batch, GN paper.
BR_ERROR_AT_4: dict[str, float] = {"BRN": 26.3, "BN": 27.3, "GN": 24.2}

# Test accuracy (%) of the public CIFAR-10 reproduction; GN is "about 85.8 at every batch size".
CIFAR_ACCURACY_VS_BATCH: dict[str, dict[int, float]] = {
    "BN": {32: 86.4, 4: 84.8, 2: 80.3},
    "GN": {32: 85.8, 4: 85.8, 2: 85.8},
}


# The norms whose papers' batch results SOURCES.md does not state as numbers (FRN's not at all,
# EvoNorm's in words only): the report says why none stands beside them.
UNPUBLISHED = ("FRN", "EvoNorm-S0", "EvoNorm-B0")

# Nothing for FRN, EvoNorm or weight standardisation: SOURCES.md ("Small-batch remedies") gives
# their definitions and, for EvoNorm, one result in words only ("Their Figure 1: ResNet-50 on
# ImageNet over 8 workers, EvoNorm-S0 holds its accuracy as the total batch falls from 1024 to
# 32 while BN-ReLU falls"), no number; the report says so (normbench/report/published.py).
# The GN paper's batch renorm number is BR_ERROR_AT_4 above ("the GN paper reports BR at batch
# 4: 26.3 (BN 27.3, GN 24.2)").


def paper_order_at_32() -> list[str]:
    """The papers' norm names from lowest to highest published error at 32 images per GPU."""
    return sorted(GN_PAPER_ERROR_AT_32, key=GN_PAPER_ERROR_AT_32.__getitem__)
