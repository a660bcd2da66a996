"""Tune the difficulty of ``data=synthetic``: train a minimal model on a setting, print test
accuracy per epoch.

    python scripts/tune_synthetic.py images --epochs 5                 # the defaults
    python scripts/tune_synthetic.py images --noise 1.5 --norm group --epochs 5
    python scripts/tune_synthetic.py sequence --epochs 8 --seed 1

Self-contained on purpose (its own ResNet-8 and LSTM, a plain loop): it measures the data,
not the harness. images: CIFAR-style ResNet-8 (width 16), SGD lr 0.1 momentum 0.9 weight
decay 5e-4, batch 32, constant lr. sequence: LSTM(64) + LayerNorm on its last output, Adam
lr 1e-3, batch 32, forget-gate bias initialised to 1 (Jozefowicz et al. 2015; with torch's
default 0 the 24-step default task stays at chance for 8 epochs, see --forget-bias 0).
Single-threaded so that it can share a small machine: an image epoch takes 15-40 s on CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from normbench.data.synthetic import make_synthetic


def norm2d(kind: str, c: int) -> nn.Module:
    return {
        "batch": lambda: nn.BatchNorm2d(c),
        "group": lambda: nn.GroupNorm(min(8, c), c),
        "layer": lambda: nn.GroupNorm(1, c),
        "instance": lambda: nn.InstanceNorm2d(c, affine=True),
        "none": nn.Identity,
    }[kind]()


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.n1 = norm2d(norm, cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = norm2d(norm, cout)
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), norm2d(norm, cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.n1(self.c1(x)))
        return F.relu(self.n2(self.c2(h)) + self.short(x))


class ResNet8(nn.Module):
    """Stem conv, three stages of one basic block (16, 32, 64 channels), global pool: 8 layers."""

    def __init__(self, num_classes: int, norm: str, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), norm2d(norm, w), nn.ReLU())
        self.stages = nn.Sequential(
            Block(w, w, 1, norm), Block(w, 2 * w, 2, norm), Block(2 * w, 4 * w, 2, norm)
        )
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.stages(self.stem(x)).mean(dim=(2, 3)))


class LSTMClassifier(nn.Module):
    def __init__(self, features: int, num_classes: int, forget_bias: float, hidden: int = 64) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        with torch.no_grad():  # gate order i, f, g, o: shift the forget gate's bias
            self.lstm.bias_ih_l0[hidden : 2 * hidden] += forget_bias
        self.norm = nn.LayerNorm(hidden)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)  # (N, T, H)
        return self.fc(self.norm(out[:, -1]))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    hits = sum(
        (model(x[i : i + 500]).argmax(1) == y[i : i + 500]).sum().item() for i in range(0, len(x), 500)
    )
    model.train()
    return hits / len(x)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("task", choices=["images", "sequence"])
    # knobs left unset take the task defaults of normbench.data.synthetic.TASKS
    p.add_argument("--noise", type=float)
    p.add_argument("--spread", type=float)
    p.add_argument("--seq-len", type=int)
    p.add_argument("--signal-steps", type=int)
    p.add_argument("--train-size", type=int)
    p.add_argument("--norm", default="batch", help="images: batch, group, layer, instance, none")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--data-seed", type=int, default=42)
    p.add_argument("--seed", type=int, default=0, help="run seed: init and batch order")
    p.add_argument(
        "--forget-bias",
        type=float,
        default=1.0,
        help="sequence: added to the LSTM forget-gate bias at init (torch's default: 0)",
    )
    p.add_argument("--lr", type=float, help="default: 0.1 (SGD, images), 1e-3 (Adam, sequence)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    knobs = {"noise": a.noise}
    if a.task == "images":
        knobs["spread"] = a.spread
    else:
        knobs.update(seq_len=a.seq_len, signal_steps=a.signal_steps)
    d = make_synthetic(
        model_modality="tabular", task=a.task, train_size=a.train_size, seed=a.data_seed, **knobs
    )
    torch.manual_seed(a.seed)
    if a.task == "images":
        model = ResNet8(d.num_classes, a.norm)
        opt = torch.optim.SGD(model.parameters(), lr=a.lr or 0.1, momentum=0.9, weight_decay=5e-4)
    else:
        model = LSTMClassifier(d.x_train.shape[-1], d.num_classes, a.forget_bias)
        opt = torch.optim.Adam(model.parameters(), lr=a.lr or 1e-3)
    what = f"norm={a.norm}" if a.task == "images" else f"forget_bias={a.forget_bias}"
    print(f"{a.task} {knobs} {what} train={len(d.x_train)} test={len(d.x_test)} batch={a.batch}", flush=True)
    g = torch.Generator().manual_seed(a.seed)
    for epoch in range(1, a.epochs + 1):
        t0, losses = time.time(), []
        perm = torch.randperm(len(d.x_train), generator=g)
        for i in range(0, len(perm) - a.batch + 1, a.batch):  # drop the last partial batch
            idx = perm[i : i + a.batch]
            loss = F.cross_entropy(model(d.x_train[idx]), d.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        train_acc = accuracy(model, d.x_train, d.y_train)
        print(
            f"epoch {epoch}: loss {torch.stack(losses).mean():.3f} train_acc {train_acc:.3f} "
            f"test_acc {accuracy(model, d.x_test, d.y_test):.3f} ({time.time() - t0:.0f}s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
