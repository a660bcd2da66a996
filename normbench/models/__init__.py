"""Models that receive a norm builder: MLP, CIFAR-style ResNet, RNN (LSTM/GRU)."""

from normbench.models.registry import MODELS, ModelSpec, build_model, get_model_spec, register_model

__all__ = ["MODELS", "ModelSpec", "build_model", "get_model_spec", "register_model"]
