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
