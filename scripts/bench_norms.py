"""Benchmark the norm internals: BN folding speed-up at inference, and the hand-written
reference norms against torch's (forward + backward).

    python scripts/bench_norms.py                 # threads=1, CPU, about 20 s
    python scripts/bench_norms.py --device cuda --threads 4

Every ratio is measured within one run: the two variants alternate inside each repeat and the
table shows the median over repeats of the per-repeat times and of the per-repeat ratios, so
load from other processes shifts both sides alike.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as is from a checkout

from normbench.norms import fold_batchnorm, norm_builder

Row = tuple[str, float, float, float]  # name, baseline ms, other ms, other / baseline


def convnet(width: int = 32) -> nn.Module:
    """A small CIFAR-style conv net: three conv-BN-ReLU stages, global pool, linear head."""
    layers: list[nn.Module] = []
    c_in = 3
    for c_out, stride in ((width, 1), (2 * width, 2), (4 * width, 2)):
        layers += [
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        ]
        c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 10))


def _timer(device: torch.device) -> Callable[[Callable[[], object], int], float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def ms_per_call(fn: Callable[[], object], inner: int) -> float:
        sync()
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        return (time.perf_counter() - start) / inner * 1e3

    return ms_per_call


def compare(
    name: str,
    base: Callable[[], object],
    other: Callable[[], object],
    device: torch.device,
    repeats: int,
    inner: int,
) -> Row:
    """Median ms of ``base`` and ``other`` and median of their per-repeat ratio. Each timed
    repeat makes at least ``inner`` calls and lasts at least ~50 ms, so fast cases are not
    dominated by timer and scheduler noise."""
    ms = _timer(device)
    for fn in (base, other):  # warm-up: allocator, kernels, lazy init
        ms(fn, 2)
    inner = max(inner, math.ceil(50 / max(ms(base, 1), 1e-3)))
    pairs = [(ms(base, inner), ms(other, inner)) for _ in range(repeats)]
    a, b = zip(*pairs)
    return (
        name,
        statistics.median(a),
        statistics.median(b),
        statistics.median(y / x for x, y in pairs),
    )


def bench_folding(device: torch.device, repeats: int, inner: int, batch: int) -> Row:
    torch.manual_seed(0)
    model = convnet().to(device)
    with torch.no_grad():
        model(torch.randn(batch, 3, 32, 32, device=device))  # non-trivial running statistics
    model.eval()
    folded = fold_batchnorm(model)
    x = torch.randn(batch, 3, 32, 32, device=device)
    torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)

    def infer(m: nn.Module) -> Callable[[], object]:
        return lambda: _no_grad(m, x)

    return compare(
        f"convnet inference, batch {batch}: folded / unfolded",
        infer(model),
        infer(folded),
        device,
        repeats,
        inner,
    )


def _no_grad(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x)


# (norm, layout, input shape): the layers of a CIFAR ResNet stage and of the article-1 MLP
NORM_CASES = [
    ("batch", "image", (32, 64, 16, 16)),
    ("layer", "image", (32, 64, 16, 16)),
    ("group", "image", (32, 64, 16, 16)),
    ("instance", "image", (32, 64, 16, 16)),
    ("batch", "vector", (256, 512)),
    ("layer", "vector", (256, 512)),
]


def bench_reference(
    name: str, layout: str, shape: tuple[int, ...], device: torch.device, repeats: int, inner: int
) -> Row:
    torch.manual_seed(0)
    options = {"num_groups": 32} if name == "group" else {}
    x = torch.randn(shape, device=device, requires_grad=True)
    dy = torch.randn(shape, device=device)

    def step(module: nn.Module) -> Callable[[], object]:
        def run() -> None:
            module(x).backward(dy)

        return run

    torch_norm = norm_builder(name, layout, options)(shape[1]).to(device).train()
    ref_norm = norm_builder(name, layout, options, impl="reference")(shape[1]).to(device).train()
    label = f"{name} {layout} {tuple(shape)} fwd+bwd: reference / torch"
    return compare(label, step(torch_norm), step(ref_norm), device, repeats, inner)


def print_table(rows: list[Row], device: torch.device, threads: int) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"device={device.type} threads={threads} torch={torch.__version__}")
    print(f"{'case':<{width}}  {'base ms':>9}  {'other ms':>9}  {'ratio':>6}")
    for name, base, other, ratio in rows:
        print(f"{name:<{width}}  {base:9.3f}  {other:9.3f}  {ratio:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--inner", type=int, default=5, help="calls per timed repeat")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [bench_folding(device, args.repeats, args.inner, batch) for batch in (1, 32)]
    rows += [bench_reference(n, lay, s, device, args.repeats, args.inner) for n, lay, s in NORM_CASES]
    print_table(rows, device, args.threads)


if __name__ == "__main__":
    main()
