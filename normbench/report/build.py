"""Results tree -> sections -> one document -> report.md, report.html, report.tex."""

from __future__ import annotations

from pathlib import Path

from normbench.analysis import claims as claims_mod
from normbench.analysis.load import Results, load
from normbench.analysis.stats import NORM_KEY, norm_names, variants
from normbench.errors import ConfigError
from normbench.report.calibration import calibration_section
from normbench.report.controls import convergence_section, ghost_section
from normbench.report.document import Block, Document
from normbench.report.noise import noise_section
from normbench.report.options import Options
from normbench.report.published import published_section
from normbench.report.render import to_html, to_latex, to_markdown
from normbench.report.sections import (
    activations_section,
    claims_detail,
    claims_head,
    differences,
    make_figures,
    provenance,
    small_batch_figure,
    tables,
    what_was_run,
)


def document(res: Results, opts: Options, results_dir: Path, fig_dir: Path) -> Document:
    """The report as blocks: the claims first, with the small-batch curve after their table
    where the runs sweep the batch, then what was run, tables, the controls (convergence,
    ghost BN) where the runs have them, published numbers beside ours, the batch-statistics
    noise per layer and the calibration where the results have them, figures, the claims'
    details and the provenance. Writes the figure files into ``fig_dir``."""
    names = res.runs["name"].dropna().unique().tolist() if "name" in res.runs else []
    title = f"normbench report: {', '.join(map(str, names)) or results_dir.resolve().name}"
    if opts.metric != Options().metric:  # a metric asked for by name; the default may be absent
        check_metric(res, opts.metric)  # (runs that measure no test error still get a report)
    check_choices(res, opts)
    opts = opts.resolved(res.runs)
    found = claims_mod.evaluate(res, opts.metric, opts.claims)
    top = small_batch_figure(res, opts, fig_dir)
    blocks = [Block("h1", title), *claims_head(res, opts, found, top), *what_was_run(res, results_dir)]
    if len(res.done):
        blocks += [*tables(res, opts), *differences(res, opts)]
        blocks += [*convergence_section(res, fig_dir), *ghost_section(res, opts)]
        blocks += published_section(res.done, fig_dir, res.swept)
        blocks += noise_section(res)
    else:
        blocks.append(Block("p", "**No finished runs: no statistics, figures or claims.**"))
    blocks += calibration_section(results_dir, res.runs)
    if len(res.done):
        blocks += make_figures(res, opts, fig_dir, small_batch_shown=bool(top))
    blocks += activations_section(res, fig_dir)
    blocks += [*claims_detail(found), *provenance(res)]
    return Document(title, blocks)


def check_metric(res: Results, metric: str) -> None:
    """A metric no finished run has would fail deep in a table: say so with the ones they have."""
    done = res.done
    if not len(done) or metric in done.columns:
        return
    have = sorted(c for c in done.columns if isinstance(c, str) and ("/" in c or c.endswith("_gap")))
    raise ConfigError("metric", metric, f"no finished run has it; use one of {', '.join(have) or 'none'}")


def check_choices(res: Results, opts: Options) -> None:
    """A norm a claim is asked about, or a key figure 4 is asked to use, that the runs do not
    have would silently drop that claim or figure: say so with what they have. The defaults
    may be absent (a sweep without BN still gets a report)."""
    done, claim_defaults = res.done, claims_mod.ClaimOptions()
    if not len(done) or NORM_KEY not in done:
        return
    for key in (o.name for o in claims_mod.declared().values() if o.norm):
        value = getattr(opts.claims, key)
        if value != getattr(claim_defaults, key) and not variants(done, value):
            have = sorted({*done[NORM_KEY].dropna().astype(str), *norm_names(done).values()})
            raise ConfigError(key, value, f"no finished run has that norm; use one of {', '.join(have)}")
    for key in ("grid_x", "grid_facet"):
        value = getattr(opts, key)
        if value is not None and value not in res.runs.columns:
            raise ConfigError(
                key, value, f"is not a key of these runs; use a swept one: {', '.join(res.swept)}"
            )


def build_report(
    results_dir: str | Path, out: str | Path | None = None, options: Options | None = None
) -> Path:
    """Write report.md, report.html, report.tex and figures/ into ``out`` (default:
    ``results_dir``); returns the path of report.html. Never fails on unfinished or broken
    runs: lists them."""
    results_dir, opts = Path(results_dir), options or Options()
    out_dir = Path(out) if out is not None else results_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = document(load(results_dir), opts, results_dir, out_dir / "figures")
    (out_dir / "report.md").write_text(to_markdown(doc, out_dir))
    (out_dir / "report.tex").write_text(to_latex(doc))
    path = out_dir / "report.html"
    path.write_text(to_html(doc))
    return path
