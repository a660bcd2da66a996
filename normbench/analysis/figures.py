"""The report's figures (matplotlib): each returns a Figure, :func:`save` writes PNG and SVG.

Readable in greyscale: every norm has a line style and a marker besides its colour, and the
colours (Okabe-Ito) differ in lightness too. A norm keeps its style in every figure.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

# Figure objects without pyplot: no global figure state, no GUI backend, nothing to close.
from matplotlib.figure import Figure

from normbench.analysis import reference
from normbench.analysis.activations import Profile, init_profiles
from normbench.analysis.load import NORM_STYLE_KEY, Results
from normbench.analysis.stats import (
    BATCH_SIZE_KEY,
    NORM_KEY,
    SEED_KEY,
    aggregate,
    cell_keys,
    curve_band,
    groups,
    label,
    scale,
    t_interval,
)

MAX_PANELS = 12


@dataclass(frozen=True)
class Style:
    color: str
    linestyle: str | tuple
    marker: str

    @classmethod
    def recorded(cls, style: tuple[str, tuple[float, ...], str]) -> Style:
        """The style a run recorded for its norm (load.NORM_STYLE_KEY): colour, dashes, marker."""
        color, dashes, marker = style
        return cls(color, (0, tuple(dashes)) if dashes else "-", marker)


# A norm's own style is the one its registry entry declares and its runs record; a norm without
# one gets the next fallback style (sorted by name, so the assignment is stable for a set of runs).
NEUTRAL = Style("#666666", "-", "o")
FALLBACK_COLORS = ["#CC79A7", "#56B4E9", "#999999", "#F0E442", "#882255", "#44AA99"]
FALLBACK_LINES: list[str | tuple] = [(0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 2, 1, 2))]
FALLBACK_MARKERS = ["v", "P", "*", "h", "<", ">", "p"]


def norm_styles(
    names: Iterable[str], bases: Mapping[str, str] | None = None, own: Mapping[str, Style] | None = None
) -> dict[str, Style]:
    """One style per norm label. ``own`` maps a label to the style its norm's runs recorded:
    the norm itself ("group") gets it whole, a variant of it ("group8", "group(num_groups=8)":
    ``bases`` maps a label to its norm, see ``stats.norm_names``) its colour with a line and
    marker of its own; others come from the fallback cycles."""
    names = sorted({str(n) for n in names if isinstance(n, str)})
    bases, own = bases or {}, own or {}
    colors, lines, markers = (itertools.cycle(c) for c in (FALLBACK_COLORS, FALLBACK_LINES, FALLBACK_MARKERS))
    styles = {}
    for name in names:
        base = own.get(name)
        if base is not None and bases.get(name, name) == name:
            styles[name] = base
        else:
            styles[name] = Style(base.color if base else next(colors), next(lines), next(markers))
    return styles


def recorded_styles(runs: pd.DataFrame, key: str) -> dict[str, Style]:
    """{value of ``key`` (a norm label, or norm.name): the style its runs recorded}."""
    if key not in runs or NORM_STYLE_KEY not in runs:
        return {}
    found = runs[[key, NORM_STYLE_KEY]].dropna().drop_duplicates(subset=[key])
    return {str(k): Style.recorded(style) for k, style in zip(found[key], found[NORM_STYLE_KEY], strict=True)}


def metric_label(metric: str) -> str:
    if metric == "batchstats_gap":
        return "accuracy gap (points)"
    return f"{metric} (%)" if metric.endswith(("error", "accuracy")) else metric


def _panels(n: int, width: float = 4.2, height: float = 3.3) -> tuple[Figure, list[Axes]]:
    cols = min(3, max(1, n))
    rows = math.ceil(max(1, n) / cols)
    # at least 6.5 inches wide so that the figure title fits over a single panel
    fig = Figure(figsize=(max(6.5, width * cols), height * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[: max(1, n)]


def _title(keys: Sequence[str], values: Sequence[object]) -> str:
    return label(keys, values) or "all runs"


def _log2_axis(ax: Axes, xs: Sequence[float]) -> None:
    """Batch sizes are powers of two: a log2 axis with the actual sizes as tick labels."""
    ticks = sorted({float(x) for x in xs if x and x > 0})
    if not ticks:
        return
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()


def loss_curves(
    res: Results,
    styles: dict[str, Style],
    split: str = "train",
    metric: str = "loss",
    smooth: int = 0,
    log: bool = False,
) -> Figure | None:
    """Figure 1: training loss against iteration per norm, mean over seeds with its 95% CI
    band; one panel per cell of the other swept keys (batch size, model, ...)."""
    done = res.done
    if done.empty or res.curves.empty or NORM_KEY not in done:
        return None
    keys = cell_keys(done, res.swept, exclude=(SEED_KEY, NORM_KEY))
    cells = groups(done, keys)[:MAX_PANELS]
    fig, axes = _panels(len(cells))
    for ax, (values, cell) in zip(axes, cells, strict=True):
        for norm, runs in cell.groupby(NORM_KEY, sort=True):
            band = curve_band(res.curves, runs["run_id"].tolist(), split, metric, smooth)
            if band.empty:
                continue
            st = styles[norm]
            for run_id in runs["run_id"]:  # each seed, faint, under its mean
                one = curve_band(res.curves, [run_id], split, metric, smooth)
                ax.plot(one["step"], one["mean"], color=st.color, lw=0.6, alpha=0.35)
            # sparse markers: the lines stay apart in greyscale without cluttering the curve
            ax.plot(
                band["step"],
                band["mean"],
                color=st.color,
                linestyle=st.linestyle,
                marker=st.marker,
                markevery=max(1, len(band) // 8),
                markerfacecolor="white",
                label=f"{norm} (n={int(band['n'].iloc[0])})",
            )
            ax.fill_between(band["step"], band["ci_low"], band["ci_high"], color=st.color, alpha=0.2, lw=0)
        ax.set(title=_title(keys, values), xlabel="iteration", ylabel=f"{split} {metric}")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    smooth_note = f", moving average over {smooth} log points" if smooth > 1 else ""
    fig.suptitle(
        f"{split} {metric} per norm: mean over seeds (faint: each seed), band = 95% t-CI{smooth_note}"
    )
    fig.tight_layout()
    return fig


# Each seed's point sits just left of its cell's mean and interval: a factor on a log2 batch
# axis, a shift on a linear or categorical one.
SEED_SHIFT = 0.035


def _seeds(ax: Axes, runs: pd.DataFrame, x: str, metric: str, style: Style, scale: float, log: bool) -> None:
    """Each run's value of ``metric`` at its ``x`` (numeric positions), beside the mean."""
    xs = pd.to_numeric(runs[x], errors="coerce").to_numpy(float)
    ys = pd.to_numeric(runs[metric], errors="coerce").to_numpy(float) * scale
    xs = xs * 2 ** (-SEED_SHIFT) if log else xs - SEED_SHIFT
    ax.scatter(xs, ys, s=12, color=style.color, marker=style.marker, alpha=0.5, linewidths=0.8, zorder=1)


def _errorbar(ax: Axes, table: pd.DataFrame, x: str, style: Style, label: str, scale: float) -> None:
    xs = table[x].astype(float).to_numpy()
    mean = table["mean"].to_numpy(float) * scale
    low = (table["mean"] - table["ci_low"]).to_numpy(float) * scale
    high = (table["ci_high"] - table["mean"]).to_numpy(float) * scale
    err = np.nan_to_num(np.vstack([low, high]))  # one seed: no bar rather than a fake one
    ax.errorbar(
        xs,
        mean,
        yerr=err,
        color=style.color,
        linestyle=style.linestyle,
        marker=style.marker,
        capsize=3,
        label=label,
        markerfacecolor="white",
    )


# Norms at one batch size are set a little apart (a factor on the log2 axis) so that their
# intervals and seed points do not hide each other.
DODGE = 0.09


def _metric_vs_batch(ax: Axes, runs: pd.DataFrame, metric: str, styles: dict[str, Style]) -> bool:
    table = aggregate(runs, metric, [NORM_KEY, BATCH_SIZE_KEY]).dropna(subset=["mean"])
    # a batch size kept as text (a damaged summary's "abc") has no place on the axis
    table = table.assign(**{BATCH_SIZE_KEY: pd.to_numeric(table[BATCH_SIZE_KEY], errors="coerce")}).dropna(
        subset=[BATCH_SIZE_KEY]
    )
    norms = sorted(table[NORM_KEY].unique())
    for i, (norm, cells) in enumerate(table.groupby(NORM_KEY, sort=True)):
        low, high = cells["n"].min(), cells["n"].max()
        n = f"n={low}" if low == high else f"n={low}-{high}"
        shift = 2 ** (DODGE * (i - (len(norms) - 1) / 2))
        rows = cells.assign(**{BATCH_SIZE_KEY: cells[BATCH_SIZE_KEY].astype(float) * shift})
        mine = runs[runs[NORM_KEY] == norm]
        mine = mine.assign(**{BATCH_SIZE_KEY: pd.to_numeric(mine[BATCH_SIZE_KEY], errors="coerce") * shift})
        _errorbar(
            ax, rows.sort_values(BATCH_SIZE_KEY), BATCH_SIZE_KEY, styles[norm], f"{norm} ({n})", scale(metric)
        )
        _seeds(ax, mine, BATCH_SIZE_KEY, metric, styles[norm], scale(metric), log=True)
    _log2_axis(ax, table[BATCH_SIZE_KEY].astype(float))
    ax.set(xlabel=batch_axis_label(runs), ylabel=metric_label(metric))
    ax.grid(alpha=0.3)
    return not table.empty


PER_DEVICE = "per-device batch (the norms' batch)"


def batch_axis_label(runs: pd.DataFrame) -> str:
    """The batch axis names the batch the norms see and, where the runs simulate several
    devices, the one SGD steps on (docs/design.md §6): batch x devices (load's sgd_batch)."""
    devices = pd.to_numeric(runs["devices"], errors="coerce").dropna() if "devices" in runs else []
    if not len(devices) or devices.max() <= 1:
        return PER_DEVICE
    if devices.nunique() == 1:
        return f"{PER_DEVICE}\nSGD batch = batch x {int(devices.iloc[0])} devices"
    return f"{PER_DEVICE}\nSGD batch = batch x devices"


def _paper_line(ax: Axes, points: Mapping[int, float], style: Style, label: str) -> None:
    """A published curve, {x: value}: a plain line with open markers (no interval: none was
    published)."""
    xs = list(points)
    ax.plot(
        xs,
        [points[x] for x in xs],
        color=style.color,
        linestyle=style.linestyle,
        marker=style.marker,
        markerfacecolor="white",
        label=label,
    )


def small_batch(
    res: Results,
    styles: dict[str, Style],
    metric: str = "test/error",
    paper_styles: Mapping[str, Style] | None = None,
) -> Figure | None:
    """Figure 2: final test error against batch size per norm (95% CI bars), one panel per
    cell of the other swept keys, and a last panel with the GroupNorm paper's published
    ImageNet numbers for comparison, each in ``paper_styles``'s style for its name ("BN");
    None unless runs finished at 2+ batch sizes."""
    done = res.done
    if done.empty or metric not in done or BATCH_SIZE_KEY not in done or done[BATCH_SIZE_KEY].nunique() < 2:
        return None  # one batch size is a point, not a curve against the published one
    keys = cell_keys(done, res.swept, exclude=(SEED_KEY, NORM_KEY, BATCH_SIZE_KEY))
    cells = groups(done, keys)[: MAX_PANELS - 1]
    fig, axes = _panels(len(cells) + 1)
    for ax, (values, cell) in zip(axes[:-1], cells, strict=True):
        _metric_vs_batch(ax, cell, metric, styles)
        _spread_wide_range(ax, cell, metric)
        ax.set_title(f"these runs: {_title(keys, values)}")
        ax.legend(fontsize="small")
    ref, paper_styles = axes[-1], paper_styles or {}
    for paper, points in reference.GN_PAPER_ERROR_VS_BATCH.items():
        _paper_line(ref, points, paper_styles.get(paper) or NEUTRAL, paper)
    _log2_axis(ref, sorted({x for points in reference.GN_PAPER_ERROR_VS_BATCH.values() for x in points}))
    ref.set(
        title="PUBLISHED (not these runs):\nWu & He 2018, ResNet-50 ImageNet",
        xlabel="images per worker",
        ylabel="top-1 error (%)",
    )
    ref.grid(alpha=0.3)
    ref.legend(fontsize="small")
    fig.suptitle(
        f"Small-batch degradation: {metric_label(metric)} vs per-device batch, mean and 95% t-CI, dots: seeds"
    )
    fig.tight_layout()
    return fig


# A run far above the rest (one seed at chance beside cells under 1% error) flattens every curve
# on a linear axis; past this ratio of the largest value to the smallest cell mean, the axis is
# linear up to the smallest mean's decade and logarithmic above it, so both stay readable.
WIDE_RANGE = 10.0


def _spread_wide_range(ax: Axes, runs: pd.DataFrame, metric: str) -> None:
    """A symmetric-log y axis where the values span more than WIDE_RANGE (see there)."""
    ys = pd.to_numeric(runs[metric], errors="coerce").to_numpy(float) * scale(metric)
    means = aggregate(runs, metric, [NORM_KEY, BATCH_SIZE_KEY])["mean"].to_numpy(float) * scale(metric)
    ys, means = ys[np.isfinite(ys)], means[np.isfinite(means) & (means > 0)]
    if not len(ys) or not len(means) or ys.max() <= WIDE_RANGE * means.min():
        return
    linear_up_to = 10.0 ** math.floor(math.log10(means.min()))
    ax.set_yscale("symlog", linthresh=linear_up_to, linscale=0.5)
    ax.set_ylim(bottom=min(0.0, ys.min()))
    ax.set_ylabel(f"{ax.get_ylabel()}\nlinear to {linear_up_to:g}, log above")


def groups_vs_paper(runs: pd.DataFrame, key: str, style: Style, metric: str = "test/error") -> Figure:
    """Figure 6: group norm's ``metric`` against its number of groups (``key``): these runs
    (mean, 95% CI, seeds as dots) in the first panel, the GN paper's Table 3 in the second.
    Two panels, not one: the levels differ (a small task against ImageNet); the shapes compare,
    on y axes of the same span."""
    fig, (ours, ref) = _panels(2)
    table = aggregate(runs, metric, [key]).dropna(subset=["mean"])
    _errorbar(ours, table.sort_values(key), key, style, f"these runs (n={table['n'].max()})", scale(metric))
    _seeds(ours, runs, key, metric, style, scale(metric), log=True)
    paper = reference.GN_PAPER_ERROR_VS_GROUPS
    _paper_line(ref, paper, style, "paper, ImageNet ResNet-50")
    ours.set(title="these runs", ylabel=metric_label(metric))
    ref.set(title="PUBLISHED (not these runs):\nWu & He 2018, ResNet-50 ImageNet", ylabel="top-1 error (%)")
    for ax, xs in ((ours, table[key]), (ref, list(paper))):
        _log2_axis(ax, [float(x) for x in xs])
        ax.set(xlabel="number of groups")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    # one height in points for both panels: the paper's 1.2-point spread must not look as
    # steep as a 5-point one of these runs
    height = max(abs(ax.get_ylim()[1] - ax.get_ylim()[0]) for ax in (ours, ref))
    for ax in (ours, ref):
        middle = sum(ax.get_ylim()) / 2
        ax.set_ylim(middle - height / 2, middle + height / 2)
    fig.suptitle(
        f"Group norm: {metric_label(metric)} vs number of groups, mean and 95% t-CI, dots: seeds\n"
        "(both panels span the same number of points)"
    )
    fig.tight_layout()
    return fig


def batchstats_gap(res: Results, styles: dict[str, Style]) -> Figure | None:
    """Figure 3: accuracy with batch statistics minus accuracy with running statistics, in
    points, against batch size; only norms whose runs logged ``test_batchstats``."""
    done = res.done
    if "batchstats_gap" not in done or done["batchstats_gap"].notna().sum() == 0:
        return None
    keys = cell_keys(done, res.swept, exclude=(SEED_KEY, NORM_KEY, BATCH_SIZE_KEY))
    cells = groups(done[done["batchstats_gap"].notna()], keys)[:MAX_PANELS]
    fig, axes = _panels(len(cells))
    for ax, (values, cell) in zip(axes, cells, strict=True):
        _metric_vs_batch(ax, cell, "batchstats_gap", styles)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(_title(keys, values))
        ax.legend(fontsize="small")
    fig.suptitle(
        "Train/test gap: test accuracy with batch statistics\nminus with running statistics, "
        "mean and 95% t-CI, dots: seeds"
    )
    fig.tight_layout()
    return fig


def grid(
    runs: pd.DataFrame,
    metric: str,
    x: str,
    styles: dict[str, Style],
    facet: str | None = None,
    hue: str | None = NORM_KEY,
) -> Figure | None:
    """Figure 4: any final ``metric`` against any swept key ``x``, one line per ``hue`` value,
    one panel per ``facet`` value; mean and 95% CI over the remaining runs (seeds)."""
    if runs.empty or metric not in runs or x not in runs or (facet and facet not in runs):
        return None
    hue = hue if hue in runs and hue not in (x, facet) else None  # a key cannot be two axes
    by = [k for k in (facet, hue, x) if k]
    table = aggregate(runs, metric, by).dropna(subset=["mean"])
    if table.empty:
        return None
    lines = sorted(table[hue].astype(str).unique()) if hue else [metric]
    # norms keep their colours; any other hue (e.g. batch sizes) gets the fallback styles
    line_styles = styles if set(lines) <= set(styles) else norm_styles(lines)
    panels = groups(table, [facet] if facet else [])[:MAX_PANELS]
    fig, axes = _panels(len(panels))
    numeric = pd.api.types.is_numeric_dtype(table[x])
    cats = sorted(table[x].astype(str).unique())
    for ax, (values, part) in zip(axes, panels, strict=True):
        if not numeric:  # categories: evenly spaced positions, labelled
            ax.set_xticks(range(len(cats)), cats)
        positions = part if numeric else part.assign(**{x: part[x].astype(str).map(cats.index)})
        raw = runs[runs[facet] == values[0]] if facet else runs
        raw = raw if numeric else raw.assign(**{x: raw[x].astype(str).map(cats.index)})
        log = numeric and x == BATCH_SIZE_KEY
        for name, rows in positions.groupby(hue, sort=True) if hue else [(metric, positions)]:
            legend = f"{hue}={name}" if hue and hue != NORM_KEY else str(name)
            _errorbar(ax, rows.sort_values(x), x, line_styles[str(name)], legend, scale(metric))
            mine = raw[raw[hue] == name] if hue else raw
            _seeds(ax, mine, x, metric, line_styles[str(name)], scale(metric), log)
        if numeric and x == BATCH_SIZE_KEY:
            _log2_axis(ax, table[x].astype(float))
        ax.set(title=_title([facet] if facet else [], values), xlabel=x, ylabel=metric_label(metric))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    per = f", by {facet}" if facet else ""
    fig.suptitle(f"{metric_label(metric)} vs {x}{per}: mean and 95% t-CI, dots: seeds")
    fig.tight_layout()
    return fig


# Lines that are cells of a grid (not norms): Okabe-Ito without its yellow, which is too light
# on white; line styles and markers cycle at other lengths, so no two cells look alike.
CELL_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#000000", "#E69F00", "#56B4E9", "#999999"]


def cell_styles(n: int) -> list[Style]:
    lines = itertools.cycle(["-", "--", "-.", *FALLBACK_LINES])
    markers = itertools.cycle(["o", "s", "^", "D", *FALLBACK_MARKERS])
    return [Style(c, next(lines), next(markers)) for c, _ in zip(itertools.cycle(CELL_COLORS), range(n))]


def activations(res: Results, profiles: Sequence[Profile] | None = None) -> Figure | None:
    """Figure 5 (runs with ``activations=true``): activation std at initialisation (step 0)
    against layer, log scale, one line per cell (mean over seeds), runs that later diverged
    included. Where a line turns NaN or inf it stops: an X at the top of the panel and a note
    "NaN/inf from layer L" mark it; a std that underflowed to 0 is marked at the bottom."""
    profiles = init_profiles(res) if profiles is None else profiles
    if not profiles:
        return None
    fig = Figure(figsize=(8.0, 5.0))
    ax = fig.subplots()
    axes_y = ax.get_xaxis_transform()  # x in data (layer), y in axes fraction
    marks = 0
    for p, st in zip(profiles, cell_styles(len(profiles)), strict=True):
        shown = np.where(np.isfinite(p.std) & (p.std > 0), p.std, np.nan)  # log scale: > 0 only
        n = f" (n={len(p.run_ids)})" if len(p.run_ids) > 1 else ""
        ax.plot(
            p.layers,
            shown,
            color=st.color,
            linestyle=st.linestyle,
            marker=st.marker,
            markevery=max(1, len(p.layers) // 10),
            markerfacecolor="white",
            label=p.label + n,
        )
        for layer, y, text in ((p.first_bad, 0.97, "NaN/inf"), (p.first_zero, 0.03, "0 (underflow)")):
            if layer is None:
                continue
            ax.axvline(layer, color=st.color, linestyle=":", lw=1)
            ax.plot(
                [layer],
                [y],
                marker="X",
                markersize=11,
                color=st.color,
                markeredgecolor="black",
                transform=axes_y,
                clip_on=False,
                linestyle="none",
            )
            # beside the mark, staggered so that two lines breaking at close layers stay readable
            down = -(8 + 26 * marks) if y > 0.5 else 8 + 26 * marks
            ax.annotate(
                f"{text} from layer {layer}\n{p.label}",
                xy=(layer, y),
                xycoords=axes_y,
                xytext=(8, down),
                textcoords="offset points",
                fontsize="small",
                color=st.color,
                ha="left",
                va="top" if y > 0.5 else "bottom",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": st.color, "alpha": 0.9},
            )
            marks += 1
    ax.set_yscale("log")
    ax.set(
        xlabel="layer (1 = first hidden layer)",
        ylabel="activation std at initialisation",
        xlim=(0, int(max(p.layers.max() for p in profiles)) + 1),
    )
    ax.grid(alpha=0.3, which="both", axis="y")
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle("Activation std per layer at initialisation (step 0), mean over seeds")
    fig.tight_layout()
    return fig


def save(fig: Figure, out_dir: Path, stem: str) -> dict[str, Path]:
    """Write ``stem.png`` and ``stem.svg`` (the vector file for papers); no timestamps inside,
    so reruns give equal files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"png": out_dir / f"{stem}.png", "svg": out_dir / f"{stem}.svg"}
    fig.savefig(paths["png"], dpi=110, metadata={"Software": None})
    with matplotlib.rc_context({"svg.hashsalt": stem}):
        fig.savefig(paths["svg"], metadata={"Date": None, "Creator": None})
    return paths


def convergence(res: Results, curves: pd.DataFrame, max_panels: int = MAX_PANELS) -> Figure | None:
    """The convergence figure: eval-mode train loss (``train_eval``, see
    :mod:`normbench.probes.train_eval`) against epoch, one panel per norm (and cell of the other
    swept keys), a line per batch size, mean over seeds with its 95% t band; log scale.
    ``curves``: run_id, epoch, value (``controls.train_eval_curves``). None without such rows."""
    done = res.done
    if curves.empty or NORM_KEY not in done:
        return None
    runs = done[done["run_id"].isin(curves["run_id"])]
    keys = cell_keys(runs, res.swept, exclude=(SEED_KEY, BATCH_SIZE_KEY))
    panels = groups(runs, keys)[:max_panels]
    batches = sorted(pd.to_numeric(runs[BATCH_SIZE_KEY], errors="coerce").dropna().unique())
    styles = dict(zip(batches, cell_styles(len(batches)), strict=True))
    fig, axes = _panels(len(panels))
    for ax, (values, panel) in zip(axes, panels, strict=True):
        for batch, cell in panel.groupby(BATCH_SIZE_KEY, sort=True):
            sel = curves[curves["run_id"].isin(cell["run_id"])]
            wide = sel.pivot_table(index="epoch", columns="run_id", values="value", aggfunc="last").dropna()
            if wide.empty:
                continue
            st = styles[float(batch)]
            low, high = t_interval(wide.to_numpy().T)
            ax.plot(
                wide.index,
                wide.mean(axis=1),
                color=st.color,
                linestyle=st.linestyle,
                marker=st.marker,
                markerfacecolor="white",
                label=f"batch {batch} (n={wide.shape[1]})",
            )
            ax.fill_between(wide.index, low, high, color=st.color, alpha=0.15, lw=0)
        if (curves["value"] > 0).all():
            ax.set_yscale("log")
        ax.set(title=_title(keys, values), xlabel="epoch", ylabel="train loss, eval mode")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    fig.suptitle("Convergence: eval-mode loss on a fixed training subset, mean over seeds, band = 95% t-CI")
    fig.tight_layout()
    return fig
