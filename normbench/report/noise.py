"""Section "Batch-statistics noise per layer": the rows runs with ``bn_noise=true`` log after
the last epoch (split ``bn_noise``, metrics ``{layer}/mean`` and ``{layer}/var``), as one
table per norm that has them: layer by per-device batch, mean over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from normbench.analysis.load import Results
from normbench.analysis.stats import BATCH_SIZE_KEY, NORM_KEY, SEED_KEY, contexts, natural_key
from normbench.report.document import Block

# normbench.probes.bn_noise.SPLIT: the analysis reads the results tree, never the runner's code
SPLIT = "bn_noise"
STATS = ("mean", "var")
MEAN_OVER_LAYERS = "mean over layers"
# a results tree from elsewhere may log any number of "layers": a table stays readable
MAX_LAYERS = 200
CAPTION = (
    "Batch-statistics noise of the trained model, per BN-like layer (runs with bn_noise=true, "
    "after the last epoch): how far the statistics of one per-device batch sit from the "
    "population's, over the first training samples in batches of the per-device batch (the noise "
    "BN trained with). Cell: mean shift in population SDs / |log variance ratio|, averaged over "
    "channels and batches, then over seeds. scripts/calibrate.py measures the same for the "
    "untrained model on photographs (section Calibration, where the results folder holds "
    "calibration.json). Descriptive, not a test."
)


def fmt_pair(mean: float, var: float) -> str:
    """ "0.104 / 0.296": mean shift / |log variance ratio|; "-" where either is unknown."""
    return "-" if pd.isna(mean) or pd.isna(var) else f"{mean:.3f} / {var:.3f}"


def noise_rows(res: Results) -> pd.DataFrame:
    """One row per finished run and layer: ``run_id``, ``layer``, ``mean``, ``var`` from the
    run's last ``bn_noise`` rows; layers in the order the run logged them (the model's)."""
    curves = res.curves
    rows = curves[(curves["split"] == SPLIT) & curves["run_id"].isin(res.done["run_id"])]
    rows = rows[np.isfinite(rows["value"].astype(float))]  # a damaged line is no measurement
    if rows.empty:
        return pd.DataFrame(columns=["run_id", "layer", *STATS])
    rows = rows[rows["step"] == rows.groupby("run_id")["step"].transform("max")]
    parts = rows["metric"].astype(str).str.rpartition("/")
    rows = rows.assign(layer=parts[0], stat=parts[2])
    rows = rows[rows["stat"].isin(STATS) & (rows["layer"] != "")]
    order = {layer: i for i, layer in enumerate(pd.unique(rows["layer"]))}
    wide = rows.pivot_table(index=["run_id", "layer"], columns="stat", values="value", aggfunc="mean")
    wide = wide.reindex(columns=list(STATS)).reset_index()
    return wide.sort_values("layer", key=lambda s: s.map(order), kind="stable")


def layer_table(rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Layer x ``batch=<b>`` of "mean shift / |log var|", mean over seeds, and a last row
    averaged over the layers; (table, layers left out past :data:`MAX_LAYERS`)."""
    cells = rows.groupby([BATCH_SIZE_KEY, "layer"], sort=False)[list(STATS)].mean().reset_index()
    batches = sorted(cells[BATCH_SIZE_KEY].unique(), key=natural_key)
    layers = list(pd.unique(cells["layer"]))
    table = pd.DataFrame({"layer": [*layers[:MAX_LAYERS], MEAN_OVER_LAYERS]})
    for batch in batches:
        mine = cells[cells[BATCH_SIZE_KEY] == batch].set_index("layer").reindex(layers)
        pairs = [fmt_pair(m, v) for m, v in zip(mine["mean"], mine["var"])][:MAX_LAYERS]
        table[f"{BATCH_SIZE_KEY}={batch}"] = [*pairs, fmt_pair(mine["mean"].mean(), mine["var"].mean())]
    return table, max(len(layers) - MAX_LAYERS, 0)


def _seeds(rows: pd.DataFrame) -> str:
    counts = rows.groupby(BATCH_SIZE_KEY)[SEED_KEY].nunique() if SEED_KEY in rows else pd.Series([1])
    low, high = counts.min(), counts.max()
    return f"n={low} seed(s)" if low == high else f"n={low}-{high} seeds per batch"


def noise_section(res: Results) -> list[Block]:
    """Per context of the other swept keys and per norm that logged ``bn_noise``: the
    per-layer table; nothing where no finished run has such rows."""
    rows = noise_rows(res)
    if rows.empty or BATCH_SIZE_KEY not in res.done or NORM_KEY not in res.done:
        return []
    blocks = [Block("h2", "Batch-statistics noise per layer"), Block("p", CAPTION)]
    for context, runs in contexts(res.done, res.swept):
        keys = [k for k in ("run_id", NORM_KEY, BATCH_SIZE_KEY, SEED_KEY) if k in runs]
        mine = rows.merge(runs[keys], on="run_id").dropna(subset=[NORM_KEY, BATCH_SIZE_KEY])
        for norm, part in mine.groupby(NORM_KEY, sort=True):
            table, left_out = layer_table(part)
            where = f", {context}" if context else ""
            caption = f"norm={norm}{where}: mean shift / |log var| per layer, mean over {_seeds(part)}"
            blocks.append(Block("table", table, caption))
            if left_out:
                blocks.append(Block("p", f"{left_out} more layer(s) not shown (in the mean over layers)."))
    return blocks
