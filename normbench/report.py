"""Build the report of a run or a sweep: ``report.md`` and a self-contained ``report.html``.

    python -m normbench.report RESULTS_DIR [--out DIR]

The report is a list of blocks (headings, paragraphs, lists, tables, figures) rendered twice:
as Markdown that links the figure files, and as one HTML file with the figures embedded as
base64 PNG, no scripts, no stylesheet links, no URL of any kind, so it opens from disk
anywhere and can be mailed. Every number in it comes from the runs, except the published
reference numbers, which are labelled as such.
"""

from __future__ import annotations

import argparse
import base64
import html
import itertools
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback

from normbench.analysis import activations as act
from normbench.analysis import claims as claims_mod
from normbench.analysis import figures, reference
from normbench.analysis.load import DONE, Results, find_run_dirs, load
from normbench.analysis.stats import (
    BATCH_KEY,
    CONFIDENCE,
    N_RESAMPLES,
    NORM_KEY,
    NORM_OPTION_PREFIX,
    SEED_KEY,
    aggregate,
    cell_keys,
    contexts,
    groups,
    label,
    paired_differences,
)


@dataclass(frozen=True)
class Block:
    kind: str  # h1, h2, h3, p, ul, table, figure
    content: Any
    caption: str = ""


@dataclass(frozen=True)
class Options:
    metric: str = "test/error"
    baseline: str = "batch"
    group_norm: str = "group"
    gn_tolerance_pp: float = claims_mod.GN_TOLERANCE_PP
    smooth: int = 0
    log_loss: bool = False
    # figure 4, the generic grid: a final metric against a swept key (None: batch size if
    # swept, else the first other swept key), one panel per value of ``grid_facet``
    grid_metric: str = "train/loss"
    grid_x: str | None = None
    grid_facet: str | None = None
    # the loss-threshold claim (which norm's training loss falls below a threshold first):
    # None = only for recurrent models (model.name rnn), True/False = always/never; the
    # threshold is ``loss_threshold`` if set, else ``loss_fraction`` x the first logged loss
    threshold_claim: bool | None = None
    threshold_norm: str = "layer"
    loss_threshold: float | None = None
    loss_fraction: float = claims_mod.LOSS_FRACTION
    loss_windows: int = claims_mod.LOSS_WINDOWS  # each run's loss: mean over this many log windows


# ---------------------------------------------------------------- formatting numbers


def _scale(metric: str) -> float:
    return 100.0 if figures.is_percent(metric) else 1.0


def fmt_cell(row: pd.Series, scale: float, signed: bool = False) -> str:
    """ "14.10 [13.71, 14.52] n=3"; one seed: "14.10 (1 seed, no CI)"; no run: "-"."""
    if row is None or row["n"] == 0 or pd.isna(row["mean"]):
        return "-"
    # two decimals for errors and losses; none for throughputs, where they would be noise
    decimals = 0 if abs(row["mean"] * scale) >= 100 else 2
    f = ("{:+." if signed else "{:.") + f"{decimals}f}}"
    mean = f.format(row["mean"] * scale)
    if row["n"] < 2:
        return f"{mean} (1 seed, no CI)"
    return f"{mean} [{f.format(row['ci_low'] * scale)}, {f.format(row['ci_high'] * scale)}] n={row['n']}"


def pivot_table(
    stats: pd.DataFrame, rows: str, cols: str, scale: float, signed: bool = False
) -> pd.DataFrame:
    """Long statistics -> one row per ``rows`` value, one column per ``cols`` value."""
    stats = stats[stats["n"] > 0]  # a norm without this metric (e.g. no batch statistics): no row
    stats = stats.assign(_cell=[fmt_cell(r, scale, signed) for _, r in stats.iterrows()])
    table = stats.pivot(index=rows, columns=cols, values="_cell").fillna("-")
    table = table.reindex(sorted(table.index, key=natural_key))
    table.columns = [f"{cols}={c}" for c in table.columns]
    return table.reset_index()


def natural_key(value: object) -> list[tuple[int, object]]:
    """Sort key with the numbers inside a label taken as numbers: group(num_groups=2) before
    group(num_groups=16)."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", str(value))]


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
    runs = res.runs
    lines = []
    for key in dict.fromkeys([*res.swept, "norm.name", BATCH_KEY, "model.name", "data.name", "epochs"]):
        if key in runs:
            values = _sorted(runs[key].dropna().unique())
            lines.append(f"{key}: {', '.join(map(str, values))}" + ("" if key in res.swept else " (fixed)"))
    return lines


def _grid_keys(swept: Sequence[str]) -> list[str]:
    """The swept keys a grid is the product of: the norm label in place of ``norm.name`` and
    the norm options, which only some norms have (``norm=batch,group5,group8`` is three
    norms, not batch x {5, 8} groups)."""
    keys = [k for k in swept if k != SEED_KEY]
    if not any(k.startswith(NORM_OPTION_PREFIX) and k != "norm.name" for k in keys):
        return keys
    return list(dict.fromkeys(NORM_KEY if k.startswith(NORM_OPTION_PREFIX) else k for k in keys))


def _missing_cells(res: Results) -> list[str]:
    """Per sweep directory (so that two sweeps with different grids do not make up cells
    neither asked for): cells of its grid, the product of its swept values, with fewer
    finished seeds than its most complete cell, and what became of their other runs."""
    out = []
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
            if n < full:
                why = "".join(f", {c} {s}" for s, c in status[status != DONE].value_counts().items())
                where = f"`{sweep}` " if several else ""
                out.append(f"{where}{label(keys, cell)}: {n} of {full} seeds finished{why}")
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
        f"Each cell: mean over seeds, [{CONFIDENCE:.0%} percentile-bootstrap confidence interval of "
        f"the mean ({N_RESAMPLES} resamples, seeded)], n = number of finished seeds. Only runs with "
        f"status done are counted. Error = 1 - accuracy, in %."
    )


TABLE_NOTES = {
    "generalization_gap": ": test/loss minus train/loss (overfitting when large)",
    "weights/near_zero": ": share of weight-matrix entries with |w| < 1e-3 (sparsity: L1)",
}


def tables(res: Results, opts: Options) -> list[Block]:
    blocks = [Block("h2", "Results per norm and batch size"), Block("p", _method_note())]
    # every split's error the runs logged (test, test_batchstats, test_precise, ...), then
    # the optimisation side (losses and their gap: overfitting) and speed
    errors = sorted(c for c in res.runs.columns if isinstance(c, str) and c.endswith("/error"))
    metrics = [
        opts.metric,
        *errors,
        "train/loss",
        "test/loss",
        "generalization_gap",
        "weights/near_zero",
        "train_samples_per_s",
    ]
    for context, runs in _contexts(res):
        if context:
            blocks.append(Block("h3", context))
        for metric in dict.fromkeys(metrics):
            if metric not in runs or runs[metric].notna().sum() == 0 or BATCH_KEY not in runs:
                continue
            stats = aggregate(runs, metric, [NORM_KEY, BATCH_KEY])
            unit = " (%)" if figures.is_percent(metric) else ""
            table = pivot_table(stats, NORM_KEY, BATCH_KEY, _scale(metric))
            blocks.append(Block("table", table, f"{metric}{unit}{TABLE_NOTES.get(metric, '')}"))
    return blocks


def differences(res: Results, opts: Options) -> list[Block]:
    blocks = [Block("h2", f"Differences against norm={opts.baseline}, paired by seed")]
    done = res.done
    if NORM_KEY not in done or opts.baseline not in set(done[NORM_KEY]) or opts.metric not in done:
        return blocks + [
            Block(
                "p", f"norm={opts.baseline} has no finished runs with {opts.metric}: no paired differences."
            )
        ]
    blocks.append(
        Block(
            "p",
            f"{opts.metric} of each norm minus that of norm={opts.baseline} run with "
            "the same seed and otherwise the same cell, in points; mean [95% CI] over the "
            "pairs. Negative: lower than the baseline.",
        )
    )
    for context, runs in _contexts(res):
        diffs = paired_differences(runs, opts.metric, [BATCH_KEY], opts.baseline)
        if diffs.empty:
            continue
        title = f"{opts.metric} minus norm={opts.baseline} (points)" + (f", {context}" if context else "")
        table = pivot_table(diffs, NORM_KEY, BATCH_KEY, _scale(opts.metric), signed=True)
        blocks.append(Block("table", table, title))
    return blocks


def _pick_grid_axes(res: Results, opts: Options) -> tuple[str | None, str | None]:
    """x: batch if swept, else the first swept key besides norm and seed; facet: the next,
    never a norm key (norm.name, norm.num_groups): the norm labels are the hue already."""
    others = [k for k in res.swept if k not in (NORM_KEY, SEED_KEY, BATCH_KEY)]
    x = opts.grid_x or (BATCH_KEY if BATCH_KEY in res.swept else (others[0] if others else None))
    rest = [k for k in others if k != x and not k.startswith(NORM_OPTION_PREFIX)]
    return x, opts.grid_facet or (rest[0] if rest else None)


def make_figures(res: Results, opts: Options, fig_dir: Path) -> list[Block]:
    styles = figures.norm_styles(res.runs[NORM_KEY].dropna() if NORM_KEY in res.runs else [])
    x, facet = _pick_grid_axes(res, opts)
    # (stem, figure or None, caption, what it needs: said when it is not drawn)
    made = [
        (
            "loss_curves",
            figures.loss_curves(res, styles, smooth=opts.smooth, log=opts.log_loss),
            "Figure 1. Training loss against iteration per norm "
            "(the BN/LN/GN comparison of source article 1): "
            "mean over seeds, band = 95% CI.",
            "finished runs with training-loss curves",
        ),
        (
            "small_batch",
            figures.small_batch(res, styles, opts.metric),
            f"Figure 2. Small-batch degradation: {opts.metric} against batch size, "
            f"with the GroupNorm paper's published ImageNet numbers in the last panel "
            f"({reference.GN_PAPER}; not produced by these runs).",
            f"finished runs with {opts.metric} at two or more batch sizes",
        ),
        (
            "batchstats_gap",
            figures.batchstats_gap(res, styles),
            "Figure 3. Accuracy with batch statistics (train mode) "
            "minus with running statistics (eval mode).",
            "finished batch-norm runs evaluated with both kinds of statistics",
        ),
        (
            "grid",
            figures.grid(res.done, opts.grid_metric, x, styles, facet) if x else None,
            f"Figure 4. Final {opts.grid_metric} against {x}"
            + (f", one panel per {facet}" if facet else "")
            + ": mean and 95% CI over seeds.",
            "a swept key other than norm and seed",
        ),
    ]
    blocks = [Block("h2", "Figures")]
    for stem, fig, caption, needs in made:
        if fig is None:
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


def claims_section(res: Results, opts: Options) -> list[Block]:
    found = claims_mod.evaluate(
        res,
        opts.metric,
        opts.baseline,
        opts.group_norm,
        opts.gn_tolerance_pp,
        threshold_claim=opts.threshold_claim,
        threshold_norm=opts.threshold_norm,
        loss_threshold=opts.loss_threshold,
        loss_fraction=opts.loss_fraction,
        loss_windows=opts.loss_windows,
    )
    items = [
        f"**{c.verdict}** {c.name}" + (f" ({c.context})" if c.context else "") + f": {c.evidence}"
        for c in found
    ]
    rules = list(dict.fromkeys(f"{c.name}: {c.rule}" for c in found))
    skipped = [f"{what}: {why}" for what, why in claims_mod.out_of_scope(res).items()]
    blocks = [Block("h2", "Claims")]
    if found:
        blocks += [Block("ul", items), Block("p", "Rules (thresholds):"), Block("ul", rules)]
    else:
        blocks.append(Block("p", "No claim applies to this grid."))
    if skipped:
        blocks += [
            Block("p", "Not judged, because this grid was not designed to test them:"),
            Block("ul", skipped),
        ]
    return blocks


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
        f"started {runs['started'].dropna().min() if 'started' in runs else 'unknown'}, "
        f"finished {runs['finished'].dropna().max() if 'finished' in runs else 'unknown'}",
        f"published numbers (figure 2, claims): {reference.GN_PAPER}",
    ]
    return [Block("h2", "Provenance"), Block("ul", items)]


# ---------------------------------------------------------------- rendering


def _md_text(text: object) -> str:
    """Text from the runs (a run's name, a swept value, an error) as Markdown that cannot carry
    HTML: outside code spans, a ``<`` that could open a tag (``<a``, ``</``, ``<!``, ``<?``) is
    backslash-escaped; it still renders as ``<``, and ``a < b`` stays as it is."""
    parts = str(text).split("`")
    return "`".join(p if i % 2 else re.sub(r"<(?=[A-Za-z/!?])", r"\\<", p) for i, p in enumerate(parts))


def _md_table(frame: pd.DataFrame) -> str:
    esc = [[_md_text(v).replace("|", "\\|") for v in row] for row in frame.itertuples(index=False)]
    head = "| " + " | ".join(map(_md_text, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    return "\n".join([head, rule, *("| " + " | ".join(r) + " |" for r in esc)])


def to_markdown(blocks: Sequence[Block], base: Path) -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + _md_text(b.content))
        elif b.kind == "p":
            out.append(_md_text(b.content))
        elif b.kind == "ul":
            out.append("\n".join(f"- {_md_text(item)}" for item in b.content))
        elif b.kind == "table":
            out.append((f"**{_md_text(b.caption)}**\n\n" if b.caption else "") + _md_table(b.content))
        elif b.kind == "figure":
            png, svg = (b.content[k].relative_to(base).as_posix() for k in ("png", "svg"))
            caption = _md_text(b.caption)
            out.append(f"![{caption}]({png})\n\n*{caption}* ([SVG]({svg}))")
    return "\n\n".join(out) + "\n"


def _strong(text: str) -> str:
    """Bold; a claim's verdict also gets a colour class (the word itself stays, for greyscale)."""
    verdict = {claims_mod.PASS: "pass", claims_mod.FAIL: "fail", claims_mod.MISSING: "missing"}.get(text)
    return f'<strong class="{verdict}">{text}</strong>' if verdict else f"<strong>{text}</strong>"


def _inline(text: str) -> str:
    """Escape, then the two Markdown marks the blocks use: **bold** and `code`."""
    parts = html.escape(text).split("**")
    text = "".join(_strong(p) if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _html_table(frame: pd.DataFrame, caption: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#111}
table{border-collapse:collapse;margin:1em 0;font-size:90%}
caption{text-align:left;font-weight:bold;padding:.3em 0}
th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left}th{background:#eee}
figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}figcaption{font-size:90%;color:#333}
code{background:#f3f3f3;padding:0 .2em}li{margin:.2em 0}
.pass,.fail,.missing{padding:0 .3em;border-radius:3px;color:#fff}.pass{background:#1b7837}
.fail{background:#b2182b}.missing{background:#666}"""


def to_html(blocks: Sequence[Block], title: str) -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"<{b.kind}>{_inline(b.content)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.content)}</p>")
        elif b.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.content) + "</ul>")
        elif b.kind == "table":
            out.append(_html_table(b.content, b.caption))
        elif b.kind == "figure":
            data = base64.b64encode(b.content["png"].read_bytes()).decode("ascii")
            out.append(
                f'<figure><img alt="{html.escape(b.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline(b.caption)}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n"
    )


# ---------------------------------------------------------------- entry points


def build_report(
    results_dir: str | Path, out: str | Path | None = None, options: Options | None = None
) -> Path:
    """Write report.md, report.html and figures/ into ``out`` (default: ``results_dir``);
    returns the path of report.html. Never fails on unfinished or broken runs: lists them."""
    results_dir, opts = Path(results_dir), options or Options()
    out_dir = Path(out) if out is not None else results_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    res = load(results_dir)
    names = res.runs["name"].dropna().unique().tolist() if "name" in res.runs else []
    title = f"normbench report: {', '.join(map(str, names)) or results_dir.resolve().name}"
    blocks = [Block("h1", title), *what_was_run(res, results_dir)]
    if len(res.done):
        blocks += [*tables(res, opts), *differences(res, opts), *make_figures(res, opts, out_dir / "figures")]
    else:
        blocks.append(Block("p", "**No finished runs: no statistics, figures or claims.**"))
    blocks += activations_section(res, out_dir / "figures")
    blocks += [*claims_section(res, opts), *provenance(res)]
    (out_dir / "report.md").write_text(to_markdown(blocks, out_dir))
    path = out_dir / "report.html"
    path.write_text(to_html(blocks, title))
    return path


class ReportCallback(Callback):
    """Hydra callback: when a multirun ends, build the report in the sweep directory.

    conf/config.yaml: ``hydra.callbacks.report._target_: normbench.report.ReportCallback``;
    the keyword arguments are :class:`Options` fields.
    """

    def __init__(self, **options: Any) -> None:
        self.options = Options(**options)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        path, why = build_or_say_why(sweep_dir, None, self.options)
        if path is None:  # the runs are done and safe; say why, don't crash the sweep
            print(f"normbench.report: no report for {sweep_dir}: {why}", file=sys.stderr)
            return
        print(f"report: {path}")


def build_or_say_why(results_dir: Path, out: Path | None, options: Options) -> tuple[Path | None, str | None]:
    """(report.html, None), or (None, one line saying why) without a traceback. A report that
    fails leaves no figures/ folder it created behind."""
    fig_dir = (out if out is not None else results_dir) / "figures"
    existed = fig_dir.exists()
    try:
        return build_report(results_dir, out, options), None
    except Exception as err:  # noqa: BLE001 - any results tree: say why in one line
        if not existed:
            shutil.rmtree(fig_dir, ignore_errors=True)
        return None, " ".join(f"{type(err).__name__}: {err}".split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m normbench.report", description=__doc__.split("\n")[0])
    parser.add_argument("results_dir", type=Path, help="a run or sweep directory (searched recursively)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: RESULTS_DIR)")
    parser.add_argument("--metric", default=Options.metric, help="final metric for tables, figures, claims")
    parser.add_argument("--baseline", default=Options.baseline, help="norm the differences are taken against")
    parser.add_argument(
        "--group-norm", default=Options.group_norm, help="norm checked for batch independence"
    )
    parser.add_argument(
        "--gn-tolerance",
        type=float,
        default=Options.gn_tolerance_pp,
        help="points of error the batch-independent norm may vary by",
    )
    parser.add_argument(
        "--smooth", type=int, default=0, help="moving average over N log points (loss curves)"
    )
    parser.add_argument("--log-loss", action="store_true", help="log scale for the loss curves")
    parser.add_argument("--grid-metric", default=Options.grid_metric, help="final metric of figure 4")
    parser.add_argument("--grid-x", default=None, help="swept key on the x axis of figure 4")
    parser.add_argument("--grid-facet", default=None, help="swept key with one panel per value in figure 4")
    parser.add_argument(
        "--threshold-claim",
        choices=["auto", "on", "off"],
        default="auto",
        help="loss-threshold claim: auto = only for recurrent models (model.name rnn)",
    )
    parser.add_argument(
        "--threshold-norm",
        default=Options.threshold_norm,
        help="norm the loss-threshold claim expects to get there first",
    )
    parser.add_argument(
        "--loss-threshold",
        type=float,
        default=None,
        help="fixed training-loss threshold (default: --loss-fraction x first logged loss)",
    )
    parser.add_argument(
        "--loss-fraction",
        type=float,
        default=Options.loss_fraction,
        help="threshold as a fraction of the training loss at the first logged step",
    )
    parser.add_argument(
        "--loss-windows",
        type=int,
        default=Options.loss_windows,
        help="loss-threshold claim: each run's loss is its mean over this many log windows",
    )
    args = parser.parse_args(argv)
    if not args.results_dir.is_dir():
        print(
            f"results_dir={args.results_dir}: not a directory; pass a run or sweep directory", file=sys.stderr
        )
        return 2
    opts = Options(
        args.metric,
        args.baseline,
        args.group_norm,
        args.gn_tolerance,
        args.smooth,
        args.log_loss,
        args.grid_metric,
        args.grid_x,
        args.grid_facet,
        threshold_claim={"auto": None, "on": True, "off": False}[args.threshold_claim],
        threshold_norm=args.threshold_norm,
        loss_threshold=args.loss_threshold,
        loss_fraction=args.loss_fraction,
        loss_windows=args.loss_windows,
    )
    if not find_run_dirs(args.results_dir):
        print(
            f"error: results_dir={args.results_dir}: no runs under it (no summary.json or metrics.csv); "
            "pass a run or sweep directory",
            file=sys.stderr,
        )
        return 2
    path, why = build_or_say_why(args.results_dir, args.out, opts)
    if path is None:
        print(f"error: results_dir={args.results_dir}: {why}", file=sys.stderr)
        return 1
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
