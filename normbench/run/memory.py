"""How much memory a run may take, checked before anything large is allocated: a model or a
generated dataset that cannot fit stops with one line and its estimate, instead of an
allocation error deep in torch or numpy, or the kernel's OOM killer taking the machine down."""

from __future__ import annotations

import os
from typing import Any

import torch

from normbench.errors import ConfigError


def free_bytes(device: torch.device) -> int | None:
    """Memory free for this run on ``device``: the GPU's free memory, or the host's
    MemAvailable (Linux), else its physical memory; None when unknown (nothing is refused)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def check_fits(
    key: str, value: Any, need: int, what: str, fix: str, device: torch.device | None = None
) -> None:
    """ConfigError naming ``key=value`` when ``need`` bytes (``what`` says of what) exceed the
    memory free on ``device`` (default: the host); ``fix`` says what would work."""
    device = device if device is not None else torch.device("cpu")
    free = free_bytes(device)
    if free is not None and need > free:
        raise ConfigError(
            key,
            value,
            f"{what} needs about {gib(need)}, more than the {gib(free)} free ({device.type}); {fix}",
        )
