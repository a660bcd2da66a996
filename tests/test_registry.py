"""The one registry type behind norms, models and datasets: same lookups, same errors."""

import pytest

from normbench.data import DATASETS, build_dataset
from normbench.errors import ConfigError
from normbench.models import MODELS, get_model_spec
from normbench.norms import NORMS, get_norm_spec
from normbench.registry import Registry


@pytest.mark.parametrize(
    "lookup, message",
    [
        (
            get_norm_spec,
            r"^norm=nope: unknown norm; choose one of batch, batch_renorm, custom, .*, none, rms$",
        ),
        (get_model_spec, r"^model=nope: unknown model; choose one of mlp, resnet, rnn$"),
        (
            lambda name: build_dataset(name, model_modality="tabular"),
            r"^data=nope: unknown dataset; choose one of cifar10, custom, glyphs, synthetic$",
        ),
    ],
)
def test_an_unknown_name_is_one_line_listing_the_registered_ones(lookup, message):
    with pytest.raises(ConfigError, match=message):
        lookup("nope")


def test_norms_models_and_datasets_share_one_registry_type():
    assert all(isinstance(r, Registry) for r in (NORMS, MODELS, DATASETS))
    assert get_model_spec("mlp") is MODELS["mlp"]


def test_a_name_registered_twice_is_refused_and_the_first_entry_kept():
    table = Registry("widget", "widget")

    @table.register("a", lambda fn: (fn, "wrapped"))
    def first():
        return 1

    assert first() == 1 and table.lookup("a") == (first, "wrapped")
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        table.add("a", None)
    assert table["a"] == (first, "wrapped")
