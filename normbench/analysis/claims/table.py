"""The claims table: one module per claim, listed in ``CLAIMS`` in the order the report shows
them. ``evaluate`` judges the table; the report CLI's options are those the entries declare."""

from __future__ import annotations

from normbench.analysis.claims.base import Claim, ClaimSpec, lower_is_better

# each module's entry by its full path: the package re-exports each module's check function
# under the module's own name (claims.degrades is the function)
from normbench.analysis.claims.degrades import CLAIM as DEGRADES
from normbench.analysis.claims.degrades_more import CLAIM as DEGRADES_MORE
from normbench.analysis.claims.flat import CLAIM as FLAT
from normbench.analysis.claims.linear_rule import CLAIM as LINEAR_RULE
from normbench.analysis.claims.loop import judge_claims
from normbench.analysis.claims.near_baseline import CLAIM as NEAR_BASELINE
from normbench.analysis.claims.options import ClaimOptions
from normbench.analysis.claims.ordering import CLAIM as ORDERING
from normbench.analysis.claims.remedy_flat import CLAIM as REMEDY_FLAT
from normbench.analysis.claims.remedy_near_baseline import CLAIM as REMEDY_NEAR_BASELINE
from normbench.analysis.claims.threshold import CLAIM as THRESHOLD
from normbench.analysis.load import Results

CLAIMS: tuple[ClaimSpec, ...] = (
    DEGRADES,
    FLAT,
    DEGRADES_MORE,
    ORDERING,
    NEAR_BASELINE,
    REMEDY_NEAR_BASELINE,  # switched on by remedy_claims (experiment=remedies)
    REMEDY_FLAT,
    THRESHOLD,
    LINEAR_RULE,
)


def evaluate(res: Results, metric: str = "test/error", options: ClaimOptions | None = None) -> list[Claim]:
    """Every claim of the table, once per cell of the swept keys other than norm, batch size
    and seed (and the keys a claim pools). Claims outside their domain (or about a norm the
    grid never ran) come back as NOT APPLICABLE, the reason as evidence."""
    opts = (options or ClaimOptions()).resolved(res.runs)
    return judge_claims(res, lower_is_better(metric), opts, CLAIMS)


def out_of_scope(res: Results) -> dict[str, str]:
    """The claims this grid was not designed to test, listed in the report ({what: why}),
    judged on every run of the grid whatever its status."""
    scopes = dict.fromkeys(s.scope for s in CLAIMS if s.scope is not None and s.scope.listed)
    return {scope.what: why for scope in scopes if (why := scope.why_not(res))}
