"""Where a number came from: versions, the code's git commit, the device."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

import normbench

_PACKAGE_DIR = Path(normbench.__file__).resolve().parent


def versions() -> dict[str, str]:
    import hydra
    import numpy
    import omegaconf

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "hydra": hydra.__version__,
        "omegaconf": omegaconf.__version__,
        "numpy": numpy.__version__,
        "normbench": normbench.__version__,
    }


def git_state() -> dict[str, Any]:
    """Commit of the normbench checkout and whether the checkout differs from it (changed or
    new files) outside `results/`: curated reports under results/reference/ are not code, and
    refreshing them must not mark the next runs as made from uncommitted code."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(_PACKAGE_DIR), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--", ":(top)", ":(top,exclude)results") if commit else None
    return {"git_commit": commit, "git_dirty": bool(dirty) if dirty is not None else None}


def cpu_kind(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name ("AMD EPYC", "Intel(R) Xeon(R) CPU @ 2.20GHz"): CPU kinds round
    differently, so a number's CPU kind is part of where it came from. The machine's
    architecture where the system does not say."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({cpu_kind()}, {platform.machine()}, {torch.get_num_threads()} threads)"
