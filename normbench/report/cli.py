"""The thin entry points: ``python -m normbench.report`` and the Hydra callback."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from normbench.analysis import claims as claims_mod
from normbench.analysis.load import find_run_dirs
from normbench.errors import ConfigError, one_line
from normbench.report.build import build_report
from normbench.report.options import Options


class ReportCallback(Callback):
    """Hydra callback: when a multirun ends, build the report in the sweep directory.

    conf/config.yaml: ``hydra.callbacks.report._target_: normbench.report.ReportCallback``;
    the keyword arguments are :class:`Options` fields and :class:`ClaimOptions` fields, flat.
    """

    def __init__(self, **options: Any) -> None:
        self.options = Options.from_flat(**options)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        path, why = build_or_say_why(sweep_dir, None, self.options)
        if path is None:  # the runs are done and safe; say why, don't crash the sweep
            print(f"normbench.report: no report for {sweep_dir}: {why}", file=sys.stderr)
            return
        print(f"report: {path}")


def build_or_say_why(
    results_dir: Path, out: Path | None, options: Options, raise_bad_input: bool = False
) -> tuple[Path | None, str | None]:
    """(report.html, None), or (None, one line saying why) without a traceback. A report that
    fails leaves no figures/ folder it created behind. ``raise_bad_input``: an option the runs
    cannot serve (a ConfigError) is raised for the caller to name, after the cleanup."""
    fig_dir = (out if out is not None else results_dir) / "figures"
    existed = fig_dir.exists()
    try:
        return build_report(results_dir, out, options), None
    except Exception as err:  # noqa: BLE001 - any results tree: say why in one line
        if not existed:
            shutil.rmtree(fig_dir, ignore_errors=True)
        if raise_bad_input and isinstance(err, ConfigError):
            raise
        return None, " ".join(f"{type(err).__name__}: {err}".split())


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; exit code 2 (one line on stderr) when RESULTS_DIR is not a directory."""
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m normbench.report", description="Build the report of a run or a sweep."
    )
    parser.add_argument("results_dir", type=Path, help="a run or sweep directory (searched recursively)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: RESULTS_DIR)")
    parser.add_argument("--metric", default=defaults.metric, help="final metric for tables, figures, claims")
    parser.add_argument(
        "--baseline",
        default=defaults.baseline,
        help="norm the differences are taken against: a label as the report shows it (group8) or a norm "
        "name (default: the norm --bn checks)",
    )
    parser.add_argument(
        "--smooth", type=int, default=0, help="moving average over N log points (loss curves)"
    )
    parser.add_argument("--log-loss", action="store_true", help="log scale for the loss curves")
    parser.add_argument("--grid-metric", default=defaults.grid_metric, help="final metric of figure 4")
    parser.add_argument("--grid-x", default=None, help="swept key on the x axis of figure 4")
    parser.add_argument("--grid-facet", default=None, help="swept key with one panel per value in figure 4")
    add_claim_options(parser)
    args = parser.parse_args(argv)
    if not args.results_dir.is_dir():
        print(
            f"error: results_dir={args.results_dir}: not a directory; pass a run or sweep directory",
            file=sys.stderr,
        )
        return 2
    # every other argument is named after its Options or ClaimOptions field
    fields = {k: v for k, v in vars(args).items() if k not in ("results_dir", "out")}
    fields.update(claim_values(args))
    flags = {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}
    try:
        opts = Options.from_flat(**fields)
    except ConfigError as err:
        return _bad_option(err, flags)
    if not find_run_dirs(args.results_dir):
        print(
            f"error: results_dir={args.results_dir}: no runs under it (no summary.json or metrics.csv); "
            "pass a run or sweep directory",
            file=sys.stderr,
        )
        return 2
    if args.out is not None:  # a file there (or an unwritable place) is bad input, not a failed report
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            print(
                f"error: --out={args.out}: cannot be the report's folder ({one_line(err)}); pass a folder",
                file=sys.stderr,
            )
            return 2
    try:
        path, why = build_or_say_why(args.results_dir, args.out, opts, raise_bad_input=True)
    except ConfigError as err:
        return _bad_option(err, flags)
    if path is None:
        print(f"error: results_dir={args.results_dir}: {why}", file=sys.stderr)
        return 1
    print(f"report: {path}")
    return 0


def add_claim_options(parser: argparse.ArgumentParser) -> None:
    """One flag per option the claims table declares (those with flags), named by its field."""
    for option in claims_mod.declared().values():
        if not option.cli_flags:
            continue
        if option.choices is not None:
            words = list(option.choices)
            default = next(w for w, v in option.choices.items() if v == option.default)
            parser.add_argument(
                *option.cli_flags, dest=option.name, choices=words, default=default, help=option.help
            )
        else:
            parser.add_argument(
                *option.cli_flags,
                dest=option.name,
                type=option.type,
                default=option.default,
                help=option.help + (f" (default: the runs' {option.paper})" if option.paper else ""),
            )


def claim_values(args: argparse.Namespace) -> dict[str, Any]:
    """The values the command line's words stand for (--threshold-claim auto: None)."""
    return {
        o.name: o.choices[getattr(args, o.name)]
        for o in claims_mod.declared().values()
        if o.choices is not None and o.cli_flags
    }


def _bad_option(err: ConfigError, flags: dict[str, str]) -> int:
    """One line naming the option as typed (--margin, not its field margin_pp); exit code 2."""
    print(f"error: {flags.get(err.key, err.key)}={err.value}: {err.why}", file=sys.stderr)
    return 2
