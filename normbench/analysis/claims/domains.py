"""The domains and scopes more than one claim shares: a claim states where it applies
(docs/design.md §6), and claims that share one say "not applicable" once per cell."""

from __future__ import annotations

from normbench.analysis import reference
from normbench.analysis.claims.base import Domain, Scope
from normbench.analysis.load import Results
from normbench.analysis.stats import BATCH_SIZE_KEY, paper_names

BATCH_SIZE_CLAIMS = "the batch-size claims (BN degrades, GN flat)"
ORDER_CLAIM = "the ordering of norms"

# The published order is ResNet-50 on ImageNet: convolutional image models only.
CONVOLUTIONAL = Domain(
    "convolutional image models",
    ("image",),
    why_not="the published order is of {domain}; these runs: model.name={models}",
)
# Ba et al. (2016) show LN's lead on recurrent networks.
RECURRENT = Domain("recurrent models", ("recurrent",), every=False)


def _one_batch_size(res: Results) -> str:
    runs = res.runs
    batches = sorted(runs[BATCH_SIZE_KEY].dropna().unique()) if BATCH_SIZE_KEY in runs else []
    return f"the grid runs one batch size ({batches[0]})" if len(batches) == 1 else ""


def _few_ordered_norms(res: Results) -> str:
    papers, order = set(paper_names(res.runs).values()), reference.paper_order_at_32()
    if len(res.runs) and sum(n in papers for n in order) < 2:
        return f"the grid runs fewer than 2 of the published order's norms ({', '.join(order)})"
    return ""


# judged on every run of the grid whatever its status: runs that failed are still part of the
# design, and their claims say INCONCLUSIVE (missing data)
BATCH_SIZES = Scope(BATCH_SIZE_CLAIMS, _one_batch_size)
PUBLISHED_ORDER = Scope(ORDER_CLAIM, _few_ordered_norms)
