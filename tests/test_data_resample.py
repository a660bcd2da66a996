"""data.resample: the data draw follows the run seed; and the Hydra choices in summary.json."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, summaries

from normbench.data import build_dataset
from normbench.errors import ConfigError
from normbench.run.runner import build

SMALL = {"train_size": 16, "test_size": 8}


def _x(**options: object) -> torch.Tensor:
    ds = build_dataset("synthetic", model_modality="tabular", **SMALL, **options)
    return torch.cat([ds.x_train.flatten(), ds.x_test.flatten()])


def test_resample_draws_the_data_with_data_seed_plus_run_seed() -> None:
    assert torch.equal(_x(seed=42, resample=True, run_seed=3), _x(seed=45))
    assert not torch.equal(_x(seed=42, resample=True, run_seed=3), _x(seed=42, resample=True, run_seed=4))
    # off (the default and every preset): one draw whatever the run seed
    assert torch.equal(_x(seed=42, resample=False, run_seed=3), _x(seed=42, run_seed=7))


def test_resample_takes_every_legal_run_seed() -> None:
    # seed=9223372036854775807 data.resample=true stopped with "data.seed=9223372036854775849:
    # must be an int in [0, 2**32)", a value the user never gave
    big = 2**63 - 1
    assert torch.equal(_x(seed=42, resample=True, run_seed=big), _x(seed=(42 + big) % 2**32))


def test_resample_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match=r"^data.resample=yes: must be true or false$"):
        build_dataset("synthetic", model_modality="tabular", resample="yes", **SMALL)


@pytest.mark.slow
def test_the_runner_ties_the_draw_to_its_seed(make_cfg) -> None:
    def test_set(*overrides: str) -> torch.Tensor:
        return build(make_cfg("model=mlp", *TINY, *overrides)).trainer.data.x_test

    assert torch.equal(test_set("seed=1"), test_set("seed=2"))
    assert torch.equal(test_set("seed=1", "data.resample=true"), test_set("seed=0", "data.seed=43"))
    assert not torch.equal(test_set("seed=1", "data.resample=true"), test_set("seed=2", "data.resample=true"))


def test_summary_records_the_choices_and_bad_resample_stops_before_training(cli, tmp_path) -> None:
    result = cli("model=mlp", "norm=group8", *TINY, results=tmp_path / "ok")
    assert result.returncode == 0, result.stderr
    (s,) = summaries(tmp_path / "ok")
    assert s["choices"]["norm"] == "group8" and s["choices"]["model"] == "mlp"
    assert not any(k.startswith("hydra/") for k in s["choices"])
    bad = cli("model=mlp", "data.resample=maybe", *TINY, results=tmp_path / "bad")
    line = "error: data.resample=maybe: is not true or false; use true or false"  # the key table's
    assert bad.returncode == 2 and bad.stderr.strip() == line


def test_no_choices_outside_hydra() -> None:
    from normbench.run import record

    assert record.hydra_choices() == {}
