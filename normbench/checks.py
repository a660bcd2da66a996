"""Checks of the run-level config keys and of data against model, before anything is built."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from normbench.data import Dataset
from normbench.errors import ConfigError


def check_run_keys(cfg: DictConfig) -> None:
    for key in ("batch", "epochs", "log_every"):
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(key, value, "must be a positive integer")
    if cfg.threads is not None and (not isinstance(cfg.threads, int) or cfg.threads < 1):
        raise ConfigError("threads", cfg.threads, "must be a positive integer or null (all cores)")
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise ConfigError("seed", cfg.seed, "must be an integer")
    if cfg.progress not in ("auto", True, False):
        raise ConfigError("progress", cfg.progress, "use auto, true or false")
    if cfg.amp and resolve_device(cfg.device).type != "cuda":
        raise ConfigError(
            "amp",
            cfg.amp,
            f"bf16 autocast is for CUDA devices; with device={cfg.device} on this machine leave amp=false",
        )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device",
            name,
            f"CUDA is not available here (torch {torch.__version__}); use device=auto or device=cpu",
        )
    if name not in ("cpu", "cuda"):
        raise ConfigError("device", name, "use auto, cpu or cuda")
    return torch.device(name)


def check_data_fits(data: Dataset, name: str, model: str, modalities: tuple[str, ...], batch: int) -> None:
    if data.modality not in modalities:
        raise ConfigError(
            "data",
            name,
            f"gives {data.modality} inputs of shape "
            f"{tuple(data.x_train.shape)} ({data.name}); model={model} reads "
            f"{', '.join(modalities)}",
        )
    n = data.x_train.shape[0]
    if batch > n:
        raise ConfigError(
            "batch",
            batch,
            f"is larger than the training set ({n} samples); use batch<={n} or a larger data.train_size",
        )
