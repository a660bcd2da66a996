"""The Hydra callbacks of conf/config.yaml, kept light: Hydra instantiates them in every run,
single runs included, and a run that is not the end of a sweep must not pay for the analysis
stack (pandas, scipy, matplotlib: about 2.5 s of start-up)."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback


class SweepReport(Callback):
    """When a multirun ends, build its report (``normbench.report.ReportCallback``, imported
    only then); ``options`` are that callback's keyword arguments (the report's options)."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from normbench.report import ReportCallback

        ReportCallback(**self.options).on_multirun_end(config, **kwargs)


class OutputCheck(Callback):
    """Refuse an unsafe ``name`` or an unusable ``results_dir`` with one line and exit 2,
    before Hydra creates the run or sweep directory (the task would run too late:
    ``name=../..`` would already have made directories outside results_dir)."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        from normbench.errors import ConfigError
        from normbench.run.fused import FUSED_KEY
        from normbench.run.rundir import check_output, exit_bad_input

        if FUSED_KEY in config:  # the fused sweeper's key: a single run would leave an empty directory
            exit_bad_input(
                ConfigError(
                    FUSED_KEY,
                    config[FUSED_KEY],
                    "is the fused sweeper's own key, for sweeps only; "
                    "to train seeds fused use python run.py -m hydra/sweeper=fused seed=0,1,2",
                )
            )
        check_output(config, "hydra.run.dir", config.hydra.run.dir)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from normbench.run.rundir import check_output, check_sweep_subdirs
        from normbench.sweep.status import expand_grid

        check_output(config, "hydra.sweep.dir", config.hydra.sweep.dir)
        jobs = expand_grid(config.hydra.sweeper.get("params"), list(config.hydra.overrides.task))
        for name in {o.split("=", 1)[1] for job in jobs for o in job if o.startswith("name=")}:
            check_output(config, "hydra.sweep.dir", config.hydra.sweep.dir, name)  # a swept name
        check_sweep_subdirs(config, jobs)
