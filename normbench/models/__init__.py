"""Models that receive a norm builder: MLP, CIFAR-style ResNet, RNN (LSTM/GRU).

Defaults rule: a model's constructor keyword defaults are its defaults, so every class works
standalone (``MLP((10,), 2, norm_layer)``); ``conf/model/<name>.yaml`` lists exactly those keys
with the same values so that users see what they can override, and tests/test_models.py fails
if the two ever differ. Change a default in the signature and the YAML together.
"""

from normbench.models import mlp, resnet, rnn  # noqa: F401  (register the models)
from normbench.models.registry import MODELS, ModelSpec, build_model, get_model_spec, register_model

__all__ = ["MODELS", "ModelSpec", "build_model", "get_model_spec", "register_model"]
