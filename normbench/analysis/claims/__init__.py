"""Claims from the papers, checked against the runs: PASS, FAIL or INCONCLUSIVE.

One module per claim, each declaring a :class:`ClaimSpec` (its title, its domain, the grid it
needs, its options and its check), listed in :data:`table.CLAIMS`; :func:`evaluate` judges the
table. A new claim is one module here and one line in that table. Every claim prints its rule,
its numbers and its test (docs/design.md §6):

- "X degrades at small batch" (:mod:`.degrades`): a one-sided t-test of error(smallest batch)
  - error(largest).
- "X is batch-size independent" (:mod:`.flat`): an equivalence test (TOST) of error(b) -
  error(largest b) against a stated margin, for every b.
- "BN degrades more than GN" (:mod:`.degrades_more`): the difference-in-differences, per seed.
- "ordering" (:mod:`.ordering`): each adjacent pair of the published order resolved as
  published, reversed, or not at all (two-sided t-tests, Holm-corrected over the pairs).
- "GN within the margin of BN" at the largest batch (:mod:`.near_baseline`): the gap the paper
  reports (0.5 points), a non-inferiority test, beside the order.
- "X is non-inferior to BN at the largest batch" (:mod:`.remedy_near_baseline`) and "X is
  batch-size independent" (:mod:`.remedy_flat`) for every other norm X of the grid, where the
  report is told to make them (``remedy_claims``: the remedies preset sets it): the two tests
  above per norm, the first Holm-corrected over the norms.
- "first to the loss threshold" (:mod:`.threshold`): each seed's crossing step, then the same
  pairwise tests.
- "the linear-rule lr is within the margin of the best" (:mod:`.linear_rule`, grids sweeping
  ``optim.lr``): a non-inferiority t-test per other lr.

Not resolved is INCONCLUSIVE, never FAIL, and gives a planning line: how many seeds would
resolve a stated effect at the observed spread (:func:`stats.seeds_needed`), not evidence.
Data that should be there and is not (a norm that failed at a batch size, one seed where a
spread is needed) is INCONCLUSIVE too, said so. A run that did not learn (summary.json
``learned: false``) counts as measured, on the side it supports (its own cell worse), and
the verdict names it and says whether it rests on it (:func:`counting_unlearned`). Each claim
says whether its interval excludes the published effect size scaled to the task. A claim
outside its domain (the ImageNet order judged on an MLP: domains come from the layout the
model registry declares) is NOT APPLICABLE, and one the grid was never designed to test
(batch-size claims on one batch size) is not made: :func:`out_of_scope`.

Differences are paired on the seeds both cells ran (the others named and left out), Welch
where fewer than two are shared (see :func:`stats.difference`). Claims are checked separately
in every cell of the swept keys other than norm, batch size and seed (e.g. once per model). A
claim about a norm ("group") applies to each label of that norm ("group8",
"group(num_groups=2)"), each judged on its own.
"""

from normbench.analysis.claims.base import (
    FAIL,
    INCONCLUSIVE,
    MISSING_PREFIX,
    NOT_APPLICABLE,
    NOT_LEARNED_PREFIX,
    PASS,
    Cell,
    Claim,
    ClaimSpec,
    Domain,
    Scope,
    counting_unlearned,
    lower_is_better,
)
from normbench.analysis.claims.degrades import DEGRADES, degrades
from normbench.analysis.claims.degrades_more import DEGRADES_MORE, degrades_more
from normbench.analysis.claims.domains import BATCH_SIZE_CLAIMS, ORDER_CLAIM
from normbench.analysis.claims.flat import FLAT, flat
from normbench.analysis.claims.linear_rule import LINEAR_RULE, linear_rule, linear_rule_claims, rule_lr
from normbench.analysis.claims.near_baseline import NEAR_BASELINE, near_baseline
from normbench.analysis.claims.options import MARGIN_PP, ClaimOptions, Option, declared
from normbench.analysis.claims.ordering import ORDERING, ordering
from normbench.analysis.claims.remedy_near_baseline import NON_INFERIOR, remedy_near_baseline
from normbench.analysis.claims.table import evaluate, out_of_scope
from normbench.analysis.claims.threshold import (
    LOSS_FRACTION,
    LOSS_WINDOWS,
    THRESHOLD,
    crossings,
    first_to_threshold,
    trailing_mean,
)

__all__ = [
    "BATCH_SIZE_CLAIMS",
    "DEGRADES",
    "DEGRADES_MORE",
    "FAIL",
    "FLAT",
    "INCONCLUSIVE",
    "LINEAR_RULE",
    "LOSS_FRACTION",
    "LOSS_WINDOWS",
    "MARGIN_PP",
    "MISSING_PREFIX",
    "NEAR_BASELINE",
    "NON_INFERIOR",
    "NOT_APPLICABLE",
    "NOT_LEARNED_PREFIX",
    "ORDERING",
    "ORDER_CLAIM",
    "PASS",
    "THRESHOLD",
    "Cell",
    "Claim",
    "ClaimOptions",
    "ClaimSpec",
    "Domain",
    "Option",
    "Scope",
    "counting_unlearned",
    "crossings",
    "declared",
    "degrades",
    "degrades_more",
    "evaluate",
    "first_to_threshold",
    "flat",
    "linear_rule",
    "linear_rule_claims",
    "lower_is_better",
    "near_baseline",
    "ordering",
    "out_of_scope",
    "remedy_near_baseline",
    "rule_lr",
    "trailing_mean",
]
