"""The controls that say whether a comparison of batch sizes means something: did every cell
converge (the eval-mode train loss of ``train_eval_size``, per epoch), and is BN's small-batch
degradation its noisy statistics or its small optimisation batch (ghost BN at the large
batch beside BN at the ghost size).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from normbench.analysis.load import Results
from normbench.analysis.stats import (
    ALPHA,
    BATCH_SIZE_KEY,
    NORM_KEY,
    Difference,
    aggregate,
    difference,
    seed_values,
    variants,
)

TRAIN_EVAL = "train_eval"  # the split normbench.probes.train_eval writes
LATE = 0.75  # the late change: the last epoch against the epoch at this fraction of training
LATE_KEY = "train_eval/late_change"
GHOST_SIZE_KEY = "norm.ghost_size"


# ---------------------------------------------------------------- convergence


def train_eval_curves(res: Results, metric: str = "loss") -> pd.DataFrame:
    """The finished runs' ``train_eval`` rows of ``metric``: run_id, epoch, value (one per
    epoch, the last written if an epoch was logged twice)."""
    curves, done = res.curves, res.done
    if curves.empty or done.empty:
        return pd.DataFrame(columns=["run_id", "epoch", "value"])
    sel = curves[
        (curves["split"] == TRAIN_EVAL) & (curves["metric"] == metric) & curves["run_id"].isin(done["run_id"])
    ]
    return sel.drop_duplicates(["run_id", "epoch"], keep="last")[["run_id", "epoch", "value"]]


def late_epoch(last: float, fraction: float = LATE) -> float:
    """The epoch the late change starts from: ``fraction`` of the last epoch, rounded half down
    (3 of 4, 9 of 12)."""
    return float(np.ceil(fraction * last - 0.5))


def late_change(res: Results, fraction: float = LATE) -> pd.DataFrame:
    """The finished runs with a column ``train_eval/late_change``: each run's train_eval loss
    at its last epoch minus at the logged epoch nearest ``fraction`` of it (NaN without such
    rows, or when that is the last epoch itself). Near 0: the cell had stopped moving; clearly
    negative: it was still learning."""
    curves = train_eval_curves(res)
    change: dict[str, float] = {}
    for run_id, rows in curves.groupby("run_id"):
        by_epoch = rows.set_index("epoch")["value"].sort_index()
        last = by_epoch.index.max()
        if last <= 0:
            continue
        start = by_epoch.index[np.argmin(np.abs(by_epoch.index.to_numpy(float) - late_epoch(last, fraction)))]
        if start == last:  # one epoch: no earlier late epoch, and 0 would read "stopped learning"
            continue
        change[run_id] = float(by_epoch[last] - by_epoch[start])
    return res.done.assign(**{LATE_KEY: res.done["run_id"].map(change)})


# ---------------------------------------------------------------- ghost BN


@dataclass(frozen=True)
class GhostReading:
    """Ghost BN of ``ghost`` samples at the optimisation batch ``batch``, against BN at batch
    ``ghost`` (the same statistics' noise) and BN at ``batch`` (the same optimisation batch)."""

    label: str  # the ghost norm as the report names it (ghost2)
    batch: int
    ghost: int
    vs_small: Difference | None  # ghost BN minus BN at batch ``ghost``; None when not run
    vs_large: Difference | None  # ghost BN minus BN at batch ``batch``
    alpha: float = ALPHA

    @property
    def degradation(self) -> float:
        """BN(ghost) - BN(batch): how much worse BN is at the ghost size (nan: one not run)."""
        if self.vs_small is None or self.vs_large is None:
            return np.nan
        return self.vs_large.diff - self.vs_small.diff

    @property
    def share(self) -> float:
        """How much of BN's degradation from ``batch`` to ``ghost`` the ghost BN shows:
        (ghost - BN(batch)) / (BN(ghost) - BN(batch)); 1: all of it, 0: none. nan where BN did
        not degrade (a share of a zero or negative degradation means nothing)."""
        degradation = self.degradation
        return self.vs_large.diff / degradation if degradation > 0 else np.nan

    def _resolved(self, d: Difference | None, sign: int) -> bool:
        return d is not None and d.testable and d.p_value() < self.alpha and np.sign(d.diff) == sign

    @property
    def reading(self) -> str:
        if self.vs_small is None or self.vs_large is None:
            missing = self.ghost if self.vs_small is None else self.batch
            return f"not read: BN did not finish at batch={missing}"
        worse = self._resolved(self.vs_large, +1)  # worse than BN at the same optimisation batch
        better = self._resolved(self.vs_small, -1)  # better than BN with as few samples
        # One resolved difference and one not: the unresolved one is not shown to be zero (absence
        # of evidence), so neither explanation is concluded; the reading says what was resolved.
        if worse and not better:
            return (
                f"worse than BN at batch={self.batch} (resolved); its difference from BN at "
                f"batch={self.ghost} is not resolved, which does not make them equal: not concluded"
            )
        if better and not worse:
            return (
                f"better than BN at batch={self.ghost} (resolved); its difference from BN at "
                f"batch={self.batch} is not resolved, which does not make them equal: not concluded"
            )
        if worse and better:
            return (
                f"between the two (both resolved): the statistics explain {self.share:.0%} of the "
                f"degradation, the optimisation batch the rest"
            )
        return "unresolved: neither difference is resolved with these seeds"


def ghost_runs(done: pd.DataFrame) -> pd.DataFrame:
    """The finished runs whose norm takes its statistics over ghost batches: those with a
    ghost size among their norm options. The option is the property, read from each run's own
    config, so a results tree needs no list of norm names (a user's norm with a ghost size
    counts too)."""
    if GHOST_SIZE_KEY not in done:
        return done[:0]
    return done[pd.to_numeric(done[GHOST_SIZE_KEY], errors="coerce").notna() & done[NORM_KEY].notna()]


def ghost_control(
    done: pd.DataFrame, metric: str, bn: str, alpha: float = ALPHA
) -> tuple[pd.DataFrame, list[GhostReading]]:
    """(statistics, readings): ``metric`` per cell for ghost BN and for BN (``bn``'s first
    label) at the ghost sizes and the ghost runs' batch sizes (:func:`aggregate` rows plus a
    ``ghost_size`` column, 0 for BN), and one :class:`GhostReading` per ghost norm and batch."""
    ghosts = ghost_runs(done)
    labels = variants(done, bn)
    if ghosts.empty or metric not in done:
        return pd.DataFrame(), []
    base = done[done[NORM_KEY] == labels[0]] if labels else done[:0]
    sizes = pd.to_numeric(ghosts[GHOST_SIZE_KEY]).astype(int)
    wanted = set(sizes) | set(pd.to_numeric(ghosts[BATCH_SIZE_KEY]).astype(int))
    base = base[pd.to_numeric(base[BATCH_SIZE_KEY], errors="coerce").isin(wanted)]
    stats = pd.concat(
        [
            aggregate(base, metric, [NORM_KEY, BATCH_SIZE_KEY]).assign(ghost_size=0),
            aggregate(ghosts.assign(ghost_size=sizes), metric, [NORM_KEY, BATCH_SIZE_KEY, "ghost_size"]),
        ],
        ignore_index=True,
    )
    readings = []
    for (label, batch, ghost), rows in ghosts.assign(ghost_size=sizes).groupby(
        [NORM_KEY, BATCH_SIZE_KEY, "ghost_size"], sort=True
    ):
        at = {b: seed_values(base[base[BATCH_SIZE_KEY] == b], metric) for b in (ghost, batch)}
        mine = seed_values(rows, metric)
        vs = [difference(mine, at[b]) if len(at[b].dropna()) else None for b in (ghost, batch)]
        readings.append(GhostReading(str(label), int(batch), int(ghost), vs[0], vs[1], alpha))
    return stats, readings
