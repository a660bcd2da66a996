"""Calibrate the glyph task's per-image nuisance to photographs: print two tables.

    .venv/bin/python scripts/calibrate.py                       # photographs vs glyphs (~1 min)
    .venv/bin/python scripts/calibrate.py --glyphs "" colour=0.5,contrast=0.3  # settings to compare

1. The between-image share of pixel variance: per channel, the variance of the images' mean
   over the total pixel variance, averaged over the channels. High: images differ in overall
   colour and brightness, which BN's batch statistics see and a per-sample norm divides out.
2. Per BN layer of the untrained model (small_batch's ResNet, seed 0, norm=batch), how far the
   statistics of a batch of ``--batch`` images sit from the population's: the mean shift in
   population SDs and the |log variance ratio|, averaged over channels and batches
   (normbench.norms.batch_noise; the population is precise BN over all the images, computed in
   batches of the same size, as training at that batch computes it).

Photographs: random ``--crop`` x ``--crop`` crops of the colour photographs installed packages
ship (matplotlib's sample data: grace_hopper.jpg is the only colour photograph there; the other
images are drawings or charts), downscaled by ``--downscale`` first so that a crop holds a
part of a scene, not a few pixels of one texture. Every image set is standardised per channel
by its own constants before the model, as the glyph task is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from normbench.data.glyphs import make_glyphs  # noqa: E402
from normbench.models import build_model  # noqa: E402
from normbench.norms import batch_noise, norm_builder  # noqa: E402

PHOTOGRAPHS = ("grace_hopper.jpg",)  # matplotlib's sample data; see the module docstring
# The nuisance this measurement proposes for the glyph task (see the README's calibration table)
PROPOSED = "colour=0.2,brightness=0.7,contrast=0.7"
MODEL = {"depth": 14, "width": 16, "zero_init_residual": True}  # experiments/small_batch.yaml


def photo_crops(n: int, crop: int, downscale: int, seed: int) -> torch.Tensor:
    """``n`` random crops (N, 3, crop, crop) in [0, 1] from the photographs, equally many each."""
    from matplotlib import cbook
    from PIL import Image

    rng = np.random.default_rng(seed)
    crops = []
    for i, name in enumerate(PHOTOGRAPHS):
        with cbook.get_sample_data(name) as f:
            image = Image.open(f).convert("RGB")
        image = image.resize((image.width // downscale, image.height // downscale), Image.LANCZOS)
        pixels = np.asarray(image, dtype=np.float32) / 255.0  # (H, W, 3)
        count = n // len(PHOTOGRAPHS) + (i < n % len(PHOTOGRAPHS))
        rows = rng.integers(0, pixels.shape[0] - crop + 1, count)
        cols = rng.integers(0, pixels.shape[1] - crop + 1, count)
        crops += [pixels[r : r + crop, c : c + crop] for r, c in zip(rows, cols)]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def between_image_share(x: torch.Tensor) -> float:
    """Per channel: var over images of the image means / var of all pixels; mean over channels."""
    x = x.double()
    between = x.mean(dim=(2, 3)).var(dim=0, unbiased=False)
    total = x.transpose(0, 1).reshape(x.shape[1], -1).var(dim=1, unbiased=False)
    return (between / total).mean().item()


def standardised(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True)
    return (x - mean) / std


def layer_noise(x: torch.Tensor, batch: int, seed: int) -> dict[str, tuple[float, float]]:
    """Per BN layer of the untrained model: (mean shift, |log variance ratio|) at ``batch``."""
    torch.manual_seed(seed)
    model = build_model(
        "resnet",
        input_shape=tuple(x.shape[1:]),
        num_classes=10,
        norm_layer=norm_builder("batch", "image"),
        **MODEL,
    )
    usable = x.shape[0] // batch * batch
    noise = batch_noise(model, list(standardised(x[:usable]).split(batch)))
    layers = dict.fromkeys(k.rsplit("/", 1)[0] for k in noise)
    return {layer: (noise[f"{layer}/mean"], noise[f"{layer}/var"]) for layer in layers}


def glyph_images(n: int, seed: int, **nuisance: float) -> torch.Tensor:
    data = make_glyphs(model_modality="image", train_size=n, test_size=10, seed=seed, **nuisance)
    return data.x_train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="images (crops) per set")
    parser.add_argument("--batch", type=int, default=2, help="the batch whose statistics are measured")
    parser.add_argument("--crop", type=int, default=16, help="crop side in pixels (the glyphs' size)")
    parser.add_argument("--downscale", type=int, default=4, help="photograph downscale before cropping")
    parser.add_argument(
        "--glyphs",
        nargs="*",
        default=["", PROPOSED],
        help="glyph settings to compare, each 'key=value,...' of conf/data/glyphs.yaml ('': the defaults)",
    )
    parser.add_argument("--seed", type=int, default=0, help="crop positions, glyph draw and model init")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    photos = photo_crops(args.images, args.crop, args.downscale, args.seed)
    sets = {f"photo crops (1/{args.downscale})": photos}
    for spec in args.glyphs:
        nuisance = {k: float(v) for k, v in (kv.split("=") for kv in spec.split(",") if kv)}
        sets[f"glyphs {spec or 'defaults'}"] = glyph_images(args.images, args.seed, **nuisance)
    shares = {name: between_image_share(x) for name, x in sets.items()}
    noise = {name: layer_noise(x, args.batch, args.seed) for name, x in sets.items()}
    reference = next(iter(sets))

    print(f"Between-image share of pixel variance ({args.images} images, {args.crop}x{args.crop})")
    width = max(len(n) for n in sets) + 2
    print(f"{'set':<{width}} {'share':>7} {'vs photo':>9}")
    for name, share in shares.items():
        print(f"{name:<{width}} {share:7.3f} {share / shares[reference] - 1:+9.0%}")

    print(f"\nBatch-statistics noise per BN layer, untrained model, batch {args.batch}")
    print("(mean shift in population SDs / |log variance ratio|; ratio to the photographs' in brackets)")
    layers = list(noise[reference])
    names = list(sets)
    print(f"{'layer':<24}" + "".join(f" {n[:26]:>26}" for n in names))
    for layer in [*layers, "mean over layers"]:
        cells = []
        for name in names:
            if layer == "mean over layers":
                m, v = (float(np.mean([noise[name][k][i] for k in layers])) for i in (0, 1))
                rm, rv = (float(np.mean([noise[reference][k][i] for k in layers])) for i in (0, 1))
            else:
                (m, v), (rm, rv) = noise[name][layer], noise[reference][layer]
            cells.append(f"{m:.2f}/{v:.2f} ({m / rm:.2f}/{v / rv:.2f})")
        print(f"{layer:<24}" + "".join(f" {c:>26}" for c in cells))


if __name__ == "__main__":
    main()
