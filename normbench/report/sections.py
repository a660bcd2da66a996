"""The report's sections: results tree -> blocks (see document.py). Every number comes from
the runs, except the published reference numbers, which are labelled as such."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from normbench.analysis import activations as act
from normbench.analysis import claims as claims_mod
from normbench.analysis import figures, reference
from normbench.analysis.load import DONE, GAP_SOURCE_KEY, Results
from normbench.analysis.stats import (
    BATCH_SIZE_KEY,
    CONFIDENCE,
    INTERVAL_METHOD,
    NORM_KEY,
    NORM_OPTION_PREFIX,
    NORM_PAPER_KEY,
    SEED_KEY,
    aggregate,
    binomial_metric,
    cell_keys,
    contexts,
    difference_unit,
    failure_rates,
    groups,
    is_percent,
    label,
    natural_key,
    norm_names,
    paired_differences,
    scale,
    variants,
)
from normbench.report.document import NOT_LEARNED_MARK, Block
from normbench.report.options import Options

# ---------------------------------------------------------------- formatting numbers


def fmt_cell(row: pd.Series, scale: float, signed: bool = False) -> str:
    """ "14.10 [13.71, 14.52] n=3"; one seed: "14.10 (1 seed, no CI)"; no run: "-"; a "†"
    after a cell where some run did not learn."""
    if row is None or row["n"] == 0 or pd.isna(row["mean"]):
        return "-"
    # two decimals for errors and losses; none for throughputs, where they would be noise;
    # powers of ten for a loss that blew up (24 digits would hide its size)
    size = abs(row["mean"] * scale)
    decimals = 0 if size >= 100 else 2
    f = ("{:+." if signed else "{:.") + (f"{decimals}f}}" if size < BLOWN_UP else "3g}")
    mean = f.format(row["mean"] * scale)
    mark = f" {NOT_LEARNED_MARK}" if row.get("not_learned", 0) else ""
    if row["n"] < 2:
        return f"{mean} (1 seed, no CI){mark}"
    return (
        f"{mean} [{f.format(row['ci_low'] * scale)}, {f.format(row['ci_high'] * scale)}] n={row['n']}{mark}"
    )


BLOWN_UP = 1e6  # a loss this large is not a learning outcome: the network's outputs exploded
BLOWN_UP_NOTE = (
    "A cell of order {size:.0e}: some run's outputs blew up (its loss is finite but meaningless); "
    "its mean and interval describe that blow-up, not learning (descriptive, not a test)."
)


def fmt_noise(row: pd.Series, scale: float) -> str:
    """ "0.41 / 1.52": SD over seeds / one run's binomial SE; "n/a" where unknown."""
    if row is None or row["n"] == 0:
        return "-"
    sd = "n/a" if pd.isna(row["std"]) else f"{row['std'] * scale:.2f}"
    se = "n/a" if pd.isna(row["binom_se"]) else f"{row['binom_se'] * scale:.2f}"
    return f"{sd} / {se}"


def pivot_table(
    stats: pd.DataFrame,
    rows: str,
    cols: str,
    scale: float,
    signed: bool = False,
    cell: Any = fmt_cell,
) -> pd.DataFrame:
    """Long statistics -> one row per ``rows`` value, one column per ``cols`` value, each cell
    ``cell(row, scale)`` (default :func:`fmt_cell`)."""
    stats = stats[stats["n"] > 0]  # a norm without this metric (e.g. no batch statistics): no row
    fmt = (lambda r: fmt_cell(r, scale, signed)) if cell is fmt_cell else (lambda r: cell(r, scale))
    stats = stats.assign(_cell=[fmt(r) for _, r in stats.iterrows()])
    table = stats.pivot(index=rows, columns=cols, values="_cell").fillna("-")
    table = table.reindex(sorted(table.index, key=natural_key))
    table = table[sorted(table.columns, key=natural_key)]  # batch 8 before 32 when kept as text
    table.columns = [f"{cols}={c}" for c in table.columns]
    return table.reset_index()


# ---------------------------------------------------------------- sections


def _contexts(res: Results) -> list[tuple[str, pd.DataFrame]]:
    """The finished runs split by the swept keys other than norm, batch and seed."""
    return contexts(res.done, res.swept)


def _sorted(values: Any) -> list[Any]:
    """Numbers in numeric order (2, 4, 32, not 2, 32, 4); mixed types by their text."""
    values = list(values)
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _grid_values(res: Results) -> list[str]:
    """One line per key of the grid, the norms by their labels (``group8``)."""
    runs = res.runs
    swept = [*_grid_keys(res.swept), *([SEED_KEY] if SEED_KEY in res.swept else [])]
    lines = []
    for key in dict.fromkeys([*swept, NORM_KEY, BATCH_SIZE_KEY, "model.name", "data.name", "epochs"]):
        if key in runs:
            values = _sorted(runs[key].dropna().unique())
            lines.append(f"{key}: {', '.join(map(str, values))}" + ("" if key in swept else " (fixed)"))
    return lines


def _grid_keys(swept: Sequence[str]) -> list[str]:
    """The swept keys a grid is the product of, with the norm label (``norm``) in place of
    ``norm.name`` and the norm options, which only some norms have (``norm=batch,group5,group8``
    is three norms, not batch x {5, 8} groups)."""
    keys = [k for k in swept if k != SEED_KEY]
    return list(dict.fromkeys(NORM_KEY if k.startswith(NORM_OPTION_PREFIX) else k for k in keys))


def _missing_cells(res: Results) -> list[str]:
    """Per sweep directory (so that two sweeps with different grids do not make up cells
    neither asked for): cells of its grid, the product of its swept values, with fewer
    finished seeds than its most complete cell, and what became of their other runs. Cells
    with no run at all are one line: a grid made of several sweeps into one directory
    (small_batch: LN and IN at batch 32 only) never asked for them, and the runs cannot tell."""
    out, empty = [], []
    several = res.runs["sweep"].nunique() > 1 if "sweep" in res.runs else False
    for sweep, runs in res.runs.groupby("sweep", sort=True) if "sweep" in res.runs else []:
        keys = [k for k in _grid_keys(res.swept) if k in runs and runs[k].nunique() > 1]
        if not keys:
            continue
        by_cell = {c: g["status"] for c, g in groups(runs.dropna(subset=keys), keys)}
        full = max(((s == DONE).sum() for s in by_cell.values()), default=0)
        for cell in itertools.product(*(_sorted(runs[k].dropna().unique()) for k in keys)):
            status = by_cell.get(tuple(cell), pd.Series(dtype=str))
            n = int((status == DONE).sum())
            if status.empty:
                empty.append(label(keys, cell))
            elif n < full:
                why = "".join(f", {c} {s}" for s, c in status[status != DONE].value_counts().items())
                where = f"`{sweep}` " if several else ""
                out.append(f"{where}{label(keys, cell)}: {n} of {full} seeds finished{why}")
        if empty:
            where = f"`{sweep}`: " if several else ""
            out.append(
                f"{where}no run of {'; '.join(empty)} (not asked for, if the grid was several sweeps"
                " into one directory; otherwise never started: rerun the sweep)"
            )
    return out


def what_was_run(res: Results, results_dir: Path) -> list[Block]:
    runs = res.runs
    status = runs["status"].value_counts().to_dict() if len(runs) else {}  # most common first
    blocks = [
        Block("h2", "What was run"),
        Block(
            "p",
            f"{len(runs)} run(s) found under `{results_dir}`: "
            + (", ".join(f"{n} {s}" for s, n in status.items()) or "none")
            + ".",
        ),
        Block("ul", _grid_values(res)),
    ]
    done = res.done
    seeds = done.groupby(cell_keys(done, res.swept))[SEED_KEY].nunique() if len(done) else pd.Series()
    if len(seeds) and seeds.max() < 2:
        blocks.append(
            Block(
                "p",
                "**One seed per cell: no confidence interval can be computed** (shown as "
                "'1 seed, no CI'); differences between norms cannot be told apart from "
                "seed-to-seed noise. Run more seeds (`seed=1,2,3`) for error bars.",
            )
        )
    missing = _missing_cells(res)
    if missing:
        blocks += [Block("p", "Cells of the grid with missing runs:"), Block("ul", missing)]
    bad = runs[runs["status"] != DONE] if len(runs) else runs
    if len(bad):
        table = bad[["run_id", "status", "error"]].fillna("").astype(str)
        also = " except the activations at initialisation" if act.init_profiles(res) else ""
        blocks.append(Block("table", table, f"Runs that did not finish (left out of all statistics{also})"))
    return blocks


def _method_note() -> str:
    return (
        f"Each cell: mean over seeds, [{CONFIDENCE:.0%} {INTERVAL_METHOD} confidence interval of the "
        f"mean (scipy.stats.t, n - 1 degrees of freedom; an error's clipped to [0, 100]%)], n = number "
        f"of finished seeds. Only runs with status done and a finite value are counted (the failure "
        f"rates below count the others). Error = 1 - accuracy, in %. {NOT_LEARNED_MARK}: some run of "
        f"the cell did not learn (summary.json `learned: false`; listed below the table)."
    )


def _noise_note() -> str:
    return (
        "Which noise dominates: the standard deviation over seeds beside one run's binomial standard "
        "error sqrt(p(1-p)/n_test) (mean over the cell's runs), n_test = `data.test_size` from each "
        "run's config (n/a where it is null: the dataset's default size is not recorded). An SD close "
        "to the binomial SE is mostly the finite test set's sampling noise."
    )


def _not_learned_rows(runs: pd.DataFrame) -> list[str]:
    """ "norm=batch, batch=2, seed=1: accuracy at chance" for every run that did not learn."""
    if "learned" not in runs:
        return []
    bad = runs[~runs["learned"].astype(bool)]
    out = []
    for _, r in bad.iterrows():
        note = r.get("learned_note")
        where = ", ".join(f"{k}={r[k]}" for k in (NORM_KEY, BATCH_SIZE_KEY, SEED_KEY) if k in r)
        out.append(f"{where}" + (f": {note}" if isinstance(note, str) and note else ""))
    return out


# the analysis' own derived metric (load.add_derived), noted here; every measured one is noted
# by the probe that declares it (summary.json ``metrics``)
TABLE_NOTES = {
    "generalization_gap": ": test/loss minus train/loss (overfitting when large)",
    "generalization_gap/train_eval": (
        ": test/loss minus train_eval/loss, the train loss scored in eval mode on a fixed training "
        "subset as the test loss is (overfitting when large)"
    ),
}
GAP = "generalization_gap"
# The tables of a results tree written before runs declared their metrics, and the one note it
# had (probes/weights.py declares it now).
UNDECLARED_TABLES = ("train/loss", "test/loss", GAP, "weights/near_zero", "train_samples_per_s")
UNDECLARED_NOTES = {"weights/near_zero": ": share of weight-matrix entries with |w| < 1e-3 (sparsity: L1)"}


def table_metrics(res: Results, main: str) -> tuple[list[str], dict[str, str]]:
    """The report's tables in order, and each measured one's note: ``main``, every error (the
    accuracies declared for a table, as errors), the losses, their gap, then the rest the
    runs declared for a table. A tree without declarations tables every error it has and the
    fixed list of before."""
    if not res.declared:
        errors = sorted(c for c in res.runs.columns if isinstance(c, str) and c.endswith("/error"))
        return list(dict.fromkeys([main, *errors, *UNDECLARED_TABLES])), UNDECLARED_NOTES
    tabled = {name: entry for name, entry in res.declared.items() if entry["table"]}
    errors = sorted(claims_mod.lower_is_better(n) for n in tabled if n.endswith("/accuracy"))
    losses = [n for n in tabled if n.endswith("/loss")]
    rest = [n for n in tabled if n not in losses and not n.endswith("/accuracy")]
    notes = {n: f": {e['note']}" for n, e in tabled.items() if n in rest}
    return list(dict.fromkeys([main, *errors, *losses, GAP, *rest])), notes


def _table_note(metric: str, runs: pd.DataFrame, notes: dict[str, str]) -> str:
    """The note after a table's caption; the generalization gap says which train loss it used
    (load.add_derived: the eval-mode train_eval/loss where the runs measured it)."""
    if metric != GAP or GAP_SOURCE_KEY not in runs:
        return TABLE_NOTES.get(metric, notes.get(metric, ""))
    used = runs.loc[runs[metric].notna(), GAP_SOURCE_KEY].value_counts()
    if set(used.index) == {"train_eval/loss"}:
        return TABLE_NOTES["generalization_gap/train_eval"]
    if len(used) > 1:
        each = ", ".join(f"{n} runs {src}" for src, n in used.items())
        return f": test/loss minus train_eval/loss where the run measured it, else train/loss ({each})"
    return TABLE_NOTES[metric]


def tables(res: Results, opts: Options) -> list[Block]:
    blocks = [Block("h2", "Results per norm and batch size"), Block("p", _method_note())]
    # every split's error the runs logged (test, test_batchstats, test_precise, ...), then
    # the optimisation side (losses and their gap: overfitting) and what else the probes table
    metrics, notes = table_metrics(res, opts.metric)
    for context, runs in _contexts(res):
        if context:
            blocks.append(Block("h3", context))
        for metric in metrics:
            if metric not in runs or runs[metric].notna().sum() == 0 or BATCH_SIZE_KEY not in runs:
                continue
            stats = aggregate(runs, metric, [NORM_KEY, BATCH_SIZE_KEY])
            unit = " (%)" if is_percent(metric) else ""
            table = pivot_table(stats, NORM_KEY, BATCH_SIZE_KEY, scale(metric))
            blocks.append(Block("table", table, f"{metric}{unit}{_table_note(metric, runs, notes)}"))
            largest = (stats["mean"].abs() * scale(metric)).max()
            if largest >= BLOWN_UP:
                blocks.append(Block("p", BLOWN_UP_NOTE.format(size=largest)))
            if metric == opts.metric and binomial_metric(metric):
                noise = pivot_table(stats, NORM_KEY, BATCH_SIZE_KEY, scale(metric), cell=fmt_noise)
                caption = f"{metric}: SD over seeds / one run's binomial SE (points)"
                blocks += [Block("p", _noise_note()), Block("table", noise, caption)]
        bad = _not_learned_rows(runs)
        if bad:
            blocks += [Block("p", f"{NOT_LEARNED_MARK} Runs that did not learn:"), Block("ul", bad)]
    return blocks + failure_section(res, opts)


def fmt_rate(row: pd.Series, scale: float = 100.0) -> str:
    """ "1/5 = 20% [0.5, 71.6]": failed runs / runs that ended, with the exact interval."""
    return (
        f"{row['failed']}/{row['runs']} = {row['rate'] * scale:.0f}% "
        f"[{row['ci_low'] * scale:.1f}, {row['ci_high'] * scale:.1f}]"
    )


def failure_section(res: Results, opts: Options) -> list[Block]:
    """Per cell, the share of runs that failed (diverged, failed, non-finite metric or did not
    learn) with its Clopper-Pearson interval: a cell whose runs sometimes fail is bimodal, and
    a t interval over seeds does not show that."""
    runs = res.runs
    if runs.empty or BATCH_SIZE_KEY not in runs or NORM_KEY not in runs:
        return []
    note = (
        f"Failure rate per cell: runs that diverged, failed, gave a non-finite {opts.metric} or did "
        f"not learn / runs that ended (done, diverged or failed; interrupted runs are no outcome), "
        f"with its {CONFIDENCE:.0%} Clopper-Pearson interval (scipy.stats.binomtest), in %. The means "
        f"above leave the failed runs out."
    )
    blocks = [Block("p", note)]
    keys = cell_keys(runs, res.swept, exclude=(SEED_KEY, NORM_KEY, BATCH_SIZE_KEY))
    for values, part in groups(runs, keys):
        rates = failure_rates(part, opts.metric, [NORM_KEY, BATCH_SIZE_KEY]).assign(
            n=lambda f: f["runs"], mean=0.0
        )
        if rates.empty:
            continue
        table = pivot_table(rates, NORM_KEY, BATCH_SIZE_KEY, 100.0, cell=fmt_rate)
        context = label(keys, values)
        blocks.append(Block("table", table, "runs failed / runs" + (f", {context}" if context else "")))
    return blocks


def differences(res: Results, opts: Options) -> list[Block]:
    done, opts = res.done, opts.resolved(res.runs)
    labels = variants(done, opts.baseline) if NORM_KEY in done else []
    base = labels[0] if labels else opts.baseline
    blocks = [Block("h2", f"Differences against norm={base}, paired by seed")]
    if not labels or opts.metric not in done:
        return blocks + [
            Block(
                "p", f"norm={opts.baseline} has no finished runs with {opts.metric}: no paired differences."
            )
        ]
    also = (
        f" (norm={opts.baseline} also names {', '.join(labels[1:])}: pass one label)"
        if len(labels) > 1
        else ""
    )
    blocks.append(
        Block(
            "p",
            f"{opts.metric} of each norm minus that of norm={base} run with "
            f"the same seed and otherwise the same cell, in {difference_unit(opts.metric)}; "
            f"mean [{CONFIDENCE:.0%} "
            f"{INTERVAL_METHOD} CI] over the pairs. Negative: lower than the baseline.{also}",
        )
    )
    for context, runs in _contexts(res):
        diffs = paired_differences(runs, opts.metric, [BATCH_SIZE_KEY], base)
        if diffs.empty:
            continue
        unit = difference_unit(opts.metric)
        title = f"{opts.metric} minus norm={base} ({unit})" + (f", {context}" if context else "")
        table = pivot_table(diffs, NORM_KEY, BATCH_SIZE_KEY, scale(opts.metric), signed=True)
        blocks.append(Block("table", table, title))
    return blocks


def _pick_grid_axes(res: Results, opts: Options) -> tuple[str | None, str | None]:
    """x: batch if swept, else the first swept key besides norm and seed; facet: the next,
    never a norm key (norm.name, norm.num_groups): the norm labels are the hue already."""
    others = [k for k in res.swept if k not in (NORM_KEY, SEED_KEY, BATCH_SIZE_KEY)]
    x = opts.grid_x or (BATCH_SIZE_KEY if BATCH_SIZE_KEY in res.swept else (others[0] if others else None))
    rest = [k for k in others if k != x and not k.startswith(NORM_OPTION_PREFIX)]
    return x, opts.grid_facet or (rest[0] if rest else None)


def _styles(res: Results) -> dict[str, figures.Style]:
    labels = res.runs[NORM_KEY].dropna() if NORM_KEY in res.runs else []
    return figures.norm_styles(labels, norm_names(res.runs), figures.recorded_styles(res.runs, NORM_KEY))


def _paper_styles(res: Results) -> dict[str, figures.Style]:
    """The published curves ("BN", "GN") keep the style of the norm they are where it ran."""
    return figures.recorded_styles(res.runs, NORM_PAPER_KEY)


def _small_batch_caption(metric: str) -> str:
    return (
        f"Figure 2. Small-batch degradation: {metric} against the per-device batch (the batch the "
        f"norms' statistics see; the SGD batch is batch x devices), mean and 95% Student-t CI, "
        f"each seed's value as a dot beside it, with the GroupNorm paper's published ImageNet "
        f"numbers in the last panel ({reference.GN_PAPER}; not produced by these runs)."
    )


SMALL_BATCH_ON_TOP = "Figure 2 (small_batch): shown under Claims, after the claims table."


def small_batch_figure(res: Results, opts: Options, fig_dir: Path) -> list[Block]:
    """The small-batch curve for the report's first screen, where the runs sweep the
    per-device batch (the study the report is read for); nothing otherwise, and the figure
    then stays among the others (:func:`make_figures`)."""
    if BATCH_SIZE_KEY not in res.swept or not len(res.done):
        return []
    fig = figures.small_batch(res, _styles(res), opts.metric, _paper_styles(res))
    if fig is None:
        return []
    return [Block("figure", figures.save(fig, fig_dir, "small_batch"), _small_batch_caption(opts.metric))]


def make_figures(res: Results, opts: Options, fig_dir: Path, small_batch_shown: bool = False) -> list[Block]:
    """The figures section; ``small_batch_shown``: the small-batch figure is already under
    Claims (:func:`small_batch_figure`), so it is pointed to, not drawn a second time."""
    styles = _styles(res)
    x, facet = _pick_grid_axes(res, opts)
    # (stem, figure or None, caption, what it needs: said when it is not drawn)
    made = [
        (
            "loss_curves",
            figures.loss_curves(res, styles, smooth=opts.smooth, log=opts.log_loss),
            "Figure 1. Training loss against iteration per norm "
            "(the BN/LN/GN comparison of source article 1): "
            "mean over seeds, band = 95% Student-t CI, faint lines: each seed.",
            "finished runs with training-loss curves",
        ),
        (
            "small_batch",
            None if small_batch_shown else figures.small_batch(res, styles, opts.metric, _paper_styles(res)),
            _small_batch_caption(opts.metric),
            f"finished runs with {opts.metric} at two or more batch sizes",
        ),
        (
            "batchstats_gap",
            figures.batchstats_gap(res, styles),
            "Figure 3. Accuracy with batch statistics (train mode) "
            "minus with running statistics (eval mode): mean, 95% Student-t CI, each seed as a dot.",
            "finished batch-norm runs evaluated with both kinds of statistics",
        ),
        (
            "grid",
            figures.grid(res.done, opts.grid_metric, x, styles, facet) if x else None,
            f"Figure 4. Final {opts.grid_metric} against {x}"
            + (f", one panel per {facet}" if facet else "")
            + ": mean and 95% Student-t CI over seeds, each seed as a dot.",
            "a swept key other than norm and seed",
        ),
    ]
    blocks = [Block("h2", "Figures")]
    for stem, fig, caption, needs in made:
        if stem == "small_batch" and small_batch_shown:
            blocks.append(Block("p", SMALL_BATCH_ON_TOP))
        elif fig is None:
            figure = caption.split(".")[0]
            blocks.append(Block("p", f"{figure} ({stem}): not drawn, it needs {needs}."))
        else:
            blocks.append(Block("figure", figures.save(fig, fig_dir, stem), caption))
    return blocks


def activations_section(res: Results, fig_dir: Path) -> list[Block]:
    """Runs with ``activations=true`` (source article 2's signal-propagation study): the
    per-layer std at initialisation as a figure and a table. Nothing without such data."""
    profiles = act.init_profiles(res)
    if not profiles:
        return []
    fig = figures.activations(res, profiles)
    shown = sorted({s for p in profiles for s in p.statuses} - {DONE})
    diverged = (
        f" Runs with status {', '.join(shown)} are included here, and only here: their "
        "step-0 rows were logged before training."
        if shown
        else ""
    )
    note = (
        "Activation standard deviation of each layer's output on the first training batch at "
        "initialisation (step 0, before any update), per cell of the grid, mean over seeds "
        "(a layer is NaN/inf if any seed's is). Source article 2: with PyTorch's default init the "
        "std vanishes with depth, with N(0, 1) weights it explodes to NaN/inf, with Kaiming init it "
        "stays of order one, and with BatchNorm it is stable whatever the init." + diverged
    )
    caption = (
        "Figure 5. Activation std per layer at initialisation, log scale, mean over seeds; "
        "an X and a note mark the first layer whose std is NaN or inf (or exactly 0)."
        + (f" Includes runs that {'/'.join(shown)} later (their initialisation is valid)." if shown else "")
    )
    return [
        Block("h2", "Activations at initialisation"),
        Block("p", note),
        Block("figure", figures.save(fig, fig_dir, "activations"), caption),
        Block(
            "table",
            act.init_table(profiles),
            "Activation std at initialisation (mean over seeds) and the first layer where it is "
            "NaN or inf, at initialisation and at the last logged point (summary.json)",
        ),
    ]


def _claim_title(c: claims_mod.Claim) -> str:
    return c.name + (f" ({c.context})" if c.context else "")


def _not_applicable_lines(claims: Sequence[claims_mod.Claim]) -> list[str]:
    """One line per claim and reason, however many cells of the other swept keys share it
    (regularization's four reg values once, not four times)."""
    cells: dict[tuple[str, str], list[str]] = {}
    for c in claims:
        cells.setdefault((c.name, c.evidence), []).append(c.context)
    lines = []
    for (name, evidence), cell_names in cells.items():
        where = f" ({cell_names[0]})" if len(cell_names) == 1 and cell_names[0] else ""
        where = f" ({len(cell_names)} cells of the other swept keys)" if len(cell_names) > 1 else where
        lines.append(f"{name}{where}: {evidence}")
    return lines


def _why(c: claims_mod.Claim) -> str:
    """ " (missing data)", " (runs that did not learn)": why a claim decided nothing, when
    that is not the seeds' spread; a verdict that counts runs that did not learn says so."""
    if c.verdict != claims_mod.INCONCLUSIVE:
        learned = c.evidence.startswith(claims_mod.NOT_LEARNED_PREFIX)
        return " (counts runs that did not learn)" if learned else ""
    if c.evidence.startswith(claims_mod.NOT_LEARNED_PREFIX):
        return " (runs that did not learn)"
    return " (missing data)" if c.evidence.startswith(claims_mod.MISSING_PREFIX) else ""


PUBLISHED_COLUMN = "published effect (scaled to this task): excluded by the interval?"


def claims_table(found: Sequence[claims_mod.Claim]) -> pd.DataFrame:
    """One row per judged claim: claim, verdict, effect and interval, n, and whether the
    interval excludes the published effect size (a claim that resolves nothing can still
    rule out an effect as large as the paper's)."""
    rows = [
        {
            "claim": _claim_title(c),
            "verdict": f"**{c.verdict}**" + _why(c),
            "effect [interval]": c.effect or "-",
            "n": c.n or "-",
            PUBLISHED_COLUMN: c.published or "-",
        }
        for c in found
        if c.verdict != claims_mod.NOT_APPLICABLE
    ]
    return pd.DataFrame(rows, columns=["claim", "verdict", "effect [interval]", "n", PUBLISHED_COLUMN])


def claims_head(
    res: Results, opts: Options, found: Sequence[claims_mod.Claim], figure: Sequence[Block] = ()
) -> list[Block]:
    """The report's head: the verdicts in one short table, then ``figure`` (the small-batch
    curve: the verdicts and the data they judge on one screen), their rules, what does not
    apply."""
    judged = [c for c in found if c.verdict != claims_mod.NOT_APPLICABLE]
    blocks = [Block("h2", "Claims")]
    if judged:
        blocks += [
            Block(
                "table", claims_table(judged), "Claims checked against these runs (details: Claims in detail)"
            ),
            *figure,
            Block("p", "Rules:"),
            Block("ul", list(dict.fromkeys(f"{c.name}: {c.rule}" for c in judged))),
        ]
    else:
        blocks += [Block("p", "No claim applies to this grid."), *figure]
    elsewhere = _not_applicable_lines([c for c in found if c.verdict == claims_mod.NOT_APPLICABLE])
    if elsewhere:
        blocks += [Block("p", "Not applicable here:"), Block("ul", elsewhere)]
    skipped = [f"{what}: {why}" for what, why in claims_mod.out_of_scope(res).items()]
    if skipped:
        blocks += [
            Block("p", "Not judged, because this grid was not designed to test them:"),
            Block("ul", skipped),
        ]
    return blocks


def claims_detail(found: Sequence[claims_mod.Claim]) -> list[Block]:
    """Each judged claim's numbers: per-cell means, differences, tests, power."""
    judged = [c for c in found if c.verdict != claims_mod.NOT_APPLICABLE]
    if not judged:
        return []
    items = [f"**{c.verdict}** {_claim_title(c)}: {c.evidence}" for c in judged]
    return [Block("h2", "Claims in detail"), Block("ul", items)]


def claims_section(res: Results, opts: Options) -> list[Block]:
    """The head and the details together (tests and callers that want the claims alone)."""
    found = claims_mod.evaluate(res, opts.metric, opts.claims)
    return [*claims_head(res, opts, found), *claims_detail(found)]


def _unique(runs: pd.DataFrame, col: str) -> str:
    if col not in runs:
        return "unknown"
    counts = runs[col].dropna().astype(str).value_counts()
    return ", ".join(f"{v} ({n} runs)" for v, n in counts.items()) or "unknown"


def provenance(res: Results) -> list[Block]:
    runs = res.runs
    wall = pd.to_numeric(runs.get("wall_time_s", pd.Series(dtype=float)), errors="coerce")
    dirty = runs["git_dirty"].fillna(False).astype(bool).sum() if "git_dirty" in runs else 0
    uncommitted = f"; {dirty} run(s) with uncommitted changes" if dirty else ""
    items = [
        f"git commit: {_unique(runs, 'git_commit')}{uncommitted}",
        *(f"{c}: {_unique(runs, c)}" for c in runs.columns if str(c).startswith("versions.")),
        f"device: {_unique(runs, 'device')}; threads: {_unique(runs, 'threads')}",
        f"wall time: {wall.sum():.1f} s over {wall.notna().sum()} runs"
        + (f" (per run {wall.min():.1f} to {wall.max():.1f} s)" if wall.notna().any() else ""),
        f"started {runs['started'].dropna().astype(str).min() if 'started' in runs else 'unknown'}, "
        f"finished {runs['finished'].dropna().astype(str).max() if 'finished' in runs else 'unknown'}",
        f"published numbers (figure 2, claims): {reference.GN_PAPER}; where the grid repeats theirs "
        f"(section Published numbers): also {reference.BR_PAPER}; {reference.CIFAR_REPRO}",
    ]
    return [Block("h2", "Provenance"), Block("ul", items)]
