"""Calibrate the glyph task's per-image nuisance to photographs: print two tables.

    .venv/bin/python scripts/calibrate.py                       # photographs vs glyphs (~3 min)
    .venv/bin/python scripts/calibrate.py --glyphs "" colour=0.5,contrast=0.3  # settings to compare

1. The between-image share of pixel variance: per channel, the variance of the images' mean
   over the total pixel variance, averaged over the channels. High: images differ in overall
   colour and brightness, which BN's batch statistics see and a per-sample norm divides out.
2. Per BN layer of the untrained model (small_batch's ResNet, seed 0, norm=batch), how far the
   statistics of a batch of ``--batch`` images sit from the population's: the mean shift in
   population SDs and the |log variance ratio|, averaged over channels and batches
   (normbench.norms.batch_noise; the population is precise BN over all the images, computed in
   batches of the same size, as training at that batch computes it).

Photographs: random ``--crop`` x ``--crop`` crops of the six colour photographs of natural scenes
that installed packages ship, read from disk (no download): matplotlib's grace_hopper.jpg and
scikit-image's astronaut, chelsea, coffee, rocket and motorcycle_left (see ``PHOTOGRAPHS`` for
why these and not the others), equally many crops of each, downscaled by ``--downscale`` first
so that a crop holds a part of a scene, not a few pixels of one texture. The targets are the
pooled set's; a first table gives each photograph alone, the spread between scenes. Every image
set is standardised per channel by its own constants before the model, as the glyph task is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from normbench.data.glyphs import make_glyphs  # noqa: E402
from normbench.models import build_model  # noqa: E402
from normbench.norms import batch_noise, norm_builder  # noqa: E402

# The colour photographs of natural scenes that installed packages ship (no download): a
# portrait, a person with objects, an animal, food on a table, a rocket outdoors, a street
# vehicle. Left out: motorcycle_right.png (the same scene as motorcycle_left.png from a few
# centimetres away: it would count one scene twice), the grey-level images (camera, brick,
# grass, gravel, moon, ...), and the non-natural or non-photographic ones (hubble_deep_field:
# a telescope's deep field, retina and ihc: medical imaging, color.png: a colour chart, logo,
# horse: a silhouette, chessboard, text, page).
MATPLOTLIB_PHOTOGRAPHS = ("grace_hopper.jpg",)  # the only colour photograph in its sample data
SKIMAGE_PHOTOGRAPHS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")
PHOTOGRAPHS = MATPLOTLIB_PHOTOGRAPHS + SKIMAGE_PHOTOGRAPHS
# The nuisance this measurement proposes for the glyph task (see the README's calibration table)
PROPOSED = "colour=0.2,brightness=0.7,contrast=0.7"
MODEL = {"depth": 14, "width": 16, "zero_init_residual": True}  # experiments/small_batch.yaml


def _photograph(name: str) -> Image.Image:
    """One photograph as RGB: matplotlib's sample data or a file of scikit-image's wheel, read
    from disk (``skimage.data``'s own loaders may fetch with pooch; these files never need to)."""
    from PIL import Image

    if name in MATPLOTLIB_PHOTOGRAPHS:
        from matplotlib import cbook

        with cbook.get_sample_data(name) as f:
            return Image.open(f).convert("RGB")
    import skimage

    return Image.open(Path(skimage.__file__).parent / "data" / name).convert("RGB")


def photo_crops(
    n: int, crop: int, downscale: int, seed: int, names: tuple[str, ...] = PHOTOGRAPHS
) -> torch.Tensor:
    """``n`` random crops (N, 3, crop, crop) in [0, 1] from the photographs ``names``, equally
    many from each, in a random order (a batch of 2 is two crops drawn from the whole set)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    per_photo = []
    for i, name in enumerate(names):
        image = _photograph(name)
        image = image.resize((image.width // downscale, image.height // downscale), Image.LANCZOS)
        pixels = np.asarray(image, dtype=np.float32) / 255.0  # (H, W, 3)
        count = n // len(names) + (i < n % len(names))
        rows = rng.integers(0, pixels.shape[0] - crop + 1, count)
        cols = rng.integers(0, pixels.shape[1] - crop + 1, count)
        per_photo.append([pixels[r : r + crop, c : c + crop] for r, c in zip(rows, cols)])
    crops = [c for group in per_photo for c in group]
    crops = [crops[i] for i in rng.permutation(len(crops))]
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


def layer_means(noise: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """(mean shift, |log variance ratio|), each averaged over the BN layers."""
    return tuple(float(np.mean([cell[i] for cell in noise.values()])) for i in (0, 1))


def print_spread(args: argparse.Namespace) -> None:
    """Each photograph alone (``--images // 2`` crops): how much the targets vary between scenes."""
    print(f"Each photograph alone ({args.images // 2} crops each, 1/{args.downscale}): the targets' spread")
    print(f"{'photograph':<22} {'share':>7} {'mean shift':>11} {'|log var|':>10}")
    rows = []
    for name in PHOTOGRAPHS:
        x = photo_crops(args.images // 2, args.crop, args.downscale, args.seed, (name,))
        rows.append((between_image_share(x), *layer_means(layer_noise(x, args.batch, args.seed))))
        print(f"{name:<22} {rows[-1][0]:7.3f} {rows[-1][1]:11.3f} {rows[-1][2]:10.3f}")
    low, high = np.min(rows, axis=0), np.max(rows, axis=0)
    print(f"{'range':<22} {low[0]:.2f}-{high[0]:.2f} {low[1]:.3f}-{high[1]:.3f} {low[2]:.3f}-{high[2]:.3f}\n")


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
    parser.add_argument("--no-spread", action="store_true", help="skip the per-photograph table (~1 min)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    if not args.no_spread:
        print_spread(args)
    photos = photo_crops(args.images, args.crop, args.downscale, args.seed)
    sets = {f"photographs (1/{args.downscale})": photos}
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
                (m, v), (rm, rv) = layer_means(noise[name]), layer_means(noise[reference])
            else:
                (m, v), (rm, rv) = noise[name][layer], noise[reference][layer]
            cells.append(f"{m:.2f}/{v:.2f} ({m / rm:.2f}/{v / rv:.2f})")
        print(f"{layer:<24}" + "".join(f" {c:>26}" for c in cells))


if __name__ == "__main__":
    main()
