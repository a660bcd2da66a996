"""What a report can be told: its own options and, whole, the claims' options."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from normbench.analysis import claims as claims_mod


@dataclass(frozen=True)
class Options:
    metric: str = "test/error"
    baseline: str = "batch"  # a norm label (group8) or a norm name (every label of that norm)
    smooth: int = 0
    log_loss: bool = False
    # figure 4, the generic grid: a final metric against a swept key (None: batch size if
    # swept, else the first other swept key), one panel per value of ``grid_facet``
    grid_metric: str = "train/loss"
    grid_x: str | None = None
    grid_facet: str | None = None
    claims: claims_mod.ClaimOptions = claims_mod.ClaimOptions()

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
