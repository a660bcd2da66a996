"""What a report can be told: its own options and, whole, the claims' options."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pandas as pd

from normbench.analysis import claims as claims_mod
from normbench.errors import ConfigError


@dataclass(frozen=True)
class Options:
    metric: str = "test/error"
    # a norm label (group8) or a norm name (every label of that norm); None: the claims' bn
    baseline: str | None = None
    smooth: int = 0
    log_loss: bool = False
    # figure 4, the generic grid: a final metric against a swept key (None: batch size if
    # swept, else the first other swept key), one panel per value of ``grid_facet``
    grid_metric: str = "train/loss"
    grid_x: str | None = None
    grid_facet: str | None = None
    claims: claims_mod.ClaimOptions = claims_mod.ClaimOptions()

    def __post_init__(self) -> None:
        if self.smooth < 0:
            raise ConfigError(
                "smooth", self.smooth, "is negative; use 0 (no smoothing) or a number of log points >= 2"
            )

    def resolved(self, runs: pd.DataFrame) -> Options:
        """These options with their norm defaults made the runs' norms (the claims' BN, GN and
        LN: ClaimOptions.resolved; the baseline: the claims' BN)."""
        claims = self.claims.resolved(runs)
        return dataclasses.replace(self, claims=claims, baseline=self.baseline or claims.bn)

    @classmethod
    def from_flat(cls, **options: Any) -> Options:
        """Options from one flat set of keywords (the Hydra callback's YAML): the report's own
        fields, the rest :class:`ClaimOptions` fields (``margin_pp``, ``gn``, ...)."""
        mine = {f.name for f in dataclasses.fields(cls)} - {"claims"}
        claim_options = {k: v for k, v in options.items() if k not in mine}
        return cls(
            **{k: v for k, v in options.items() if k in mine},
            claims=claims_mod.ClaimOptions(**claim_options),
        )
