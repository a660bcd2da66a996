"""``data=glyphs``: the ten digits rendered from the fonts matplotlib ships, in band-pass noise.

A task whose class is spatial shape, so that every norm can learn it (instance norm included:
it keeps where things are, and divides out only a per-sample, per-channel scale and offset).
Each image (3, ``size``, ``size``) shows one digit (the class) in one of :data:`FONTS`, at a
random height, aspect, rotation and position, among ``clutter`` fragments (none by default):
other digits of the same fonts and stroke width at any angle and place, each cut by a random
straight edge, so that no fragment is a whole digit. A band-pass noise ``texture`` is added on
top; the defaults (``texture`` 0.35, no clutter) are small_batch's calibration. Colour is a
modest per-sample nuisance (``colour``: std of the background's and the ink's colour around 0
and 1; the polarity never flips), so that LN and GN, which divide out a sample's global colour
and contrast, gain little over BN from it. Two more per-image nuisances, off by default:
``contrast`` (std of the log of a per-image gain around the image's mean) and ``brightness``
(std of a per-image offset shared by the channels); ``scripts/calibrate.py`` measures what
settings make the images as varied as crops of photographs.

``shift`` (0, off, by default) makes the training set data-rich: every training batch is shifted
circularly by up to ``shift`` pixels each way, a fresh draw per sample and step. A circular
shift permutes an image's pixels, so its colour statistics (what the norms see) are unchanged,
and the band-pass texture is periodic, so it has no seam.

Rendering goes through ``matplotlib.ft2font`` once per (font, digit, size), cached; the
per-sample geometry is one ``affine_grid`` + ``grid_sample`` on the CPU. Train and test come
from independent generator streams (:func:`normbench.data.synthetic._streams`), so the test set
does not change with ``train_size``; every tensor is a function of ``seed`` alone. Labels are
balanced (each class ``n/10`` times, up to rounding).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from normbench.data.base import Dataset
from normbench.data.registry import register_dataset
from normbench.data.synthetic import (
    Knob,
    _balanced_labels,
    _is_int,
    _is_real,
    _size,
    _streams,
    check_generated_size,
)
from normbench.errors import ConfigError

CLASSES = "0123456789"
# Fonts with distinct digit shapes: sans, mono, serif, book and typewriter faces, upright,
# bold and slanted. All ship with matplotlib (mpl-data/fonts/ttf), so no download.
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "cmb10.ttf",
)
HEIGHT = (0.55, 0.8)  # a digit's height as a fraction of the image side
ASPECT = (0.85, 1.15)  # horizontal stretch of the digit
CUT_SOFTNESS = 8.0  # steepness of a fragment's cut edge, per unit of normalised coordinates
BAND = (0.12, 0.35)  # the texture's spatial frequencies, cycles per pixel
BACKGROUND, INK = 0.0, 1.0  # mean levels before the colour jitter
# Standardisation: fixed constants (about the mean and std of a pixel at the preset's settings),
# so no statistics cross the splits and the test set does not depend on the training set.
MEAN, STD = 0.12, 0.4
TRAIN_SIZE, TEST_SIZE = 1500, 5000  # small_batch's sizes (5000 test images: binomial SE <= 0.5 points)


def _font_dir() -> Path:
    import matplotlib  # here, not at the top: every run imports this module for its registration

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@functools.lru_cache(maxsize=8)
def templates(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (font, digit) bitmap on a ``size`` x ``size`` canvas, centred: ``(F*10, 1, size,
    size)`` coverage in [0, 1], row ``font * 10 + digit``; and each glyph's half-height in the
    canvas's normalised coordinates (F*10,), which the affine maps to the drawn height."""
    from matplotlib.ft2font import FT2Font  # only when glyphs are drawn (see _font_dir)

    canvas = torch.zeros(len(FONTS) * len(CLASSES), 1, size, size)
    half = torch.zeros(len(FONTS) * len(CLASSES))
    for f, name in enumerate(FONTS):
        font = FT2Font(str(_font_dir() / name))
        font.set_size(size, 72)  # points at 72 dpi = pixels: a digit is ~0.7-0.85 x size tall
        for d, char in enumerate(CLASSES):
            font.set_text(char, 0.0)
            font.draw_glyphs_to_bitmap(antialiased=True)
            bitmap = torch.from_numpy(np.asarray(font.get_image(), dtype=np.float32) / 255.0)
            bitmap = bitmap[:size, :size]  # a glyph never fills the canvas at this size; be safe
            h, w = bitmap.shape
            top, left = (size - h) // 2, (size - w) // 2
            canvas[f * len(CLASSES) + d, 0, top : top + h, left : left + w] = bitmap
            half[f * len(CLASSES) + d] = h / size
    return canvas, half


def _rotation(angle: torch.Tensor) -> torch.Tensor:
    """(N,) radians -> (N, 2, 2) rotation matrices."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _place(
    rows: torch.Tensor, half: torch.Tensor, height, angle, aspect, centre, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw templates ``rows`` (N, 1, T, T) at ``height`` (fraction of the side), rotated by
    ``angle``, stretched by ``aspect`` and centred at ``centre`` (N, 2) in normalised output
    coordinates. Returns the (N, 1, size, size) coverage and the sampling grid (N, size, size, 2)
    in template coordinates."""
    linear = _rotation(angle) * (half / height)[:, None, None]  # output -> template coordinates
    linear = linear / torch.stack([aspect, torch.ones_like(aspect)], -1)[:, None, :]
    shift = -(linear @ centre[:, :, None])  # the output point `centre` maps to the glyph's centre
    theta = torch.cat([linear, shift], 2)  # (N, 2, 3)
    grid = F.affine_grid(theta, [rows.shape[0], 1, size, size], align_corners=False)
    return F.grid_sample(rows, grid, mode="bilinear", padding_mode="zeros", align_corners=False), grid


def _uniform(rng: np.random.Generator, lo: float, hi: float, shape) -> torch.Tensor:
    return torch.from_numpy(rng.uniform(lo, hi, shape).astype(np.float32))


def _digits(rng: np.random.Generator, y: np.ndarray, size: int, rotation: float) -> torch.Tensor:
    """The class digits: random font, height, aspect, rotation and position; (N, 1, S, S)."""
    canvas, half = templates(size)
    n = len(y)
    rows = torch.from_numpy(rng.integers(0, len(FONTS), n) * len(CLASSES) + y)
    height = _uniform(rng, *HEIGHT, n)
    room = (1 - height)[:, None] * 0.9  # keep the digit inside the frame
    centre = _uniform(rng, -1, 1, (n, 2)) * room
    angle = _uniform(rng, -np.radians(rotation), np.radians(rotation), n)
    ink, _ = _place(canvas[rows], half[rows], height, angle, _uniform(rng, *ASPECT, n), centre, size)
    return ink


def _fragments(rng: np.random.Generator, n: int, clutter: int, size: int) -> torch.Tensor:
    """The clutter: ``clutter`` pieces per image of any digit in any font, at the digits' own
    heights (same stroke width), any angle and place, each cut by a random straight edge through
    the glyph; their union, (N, 1, S, S)."""
    out = torch.zeros(n, 1, size, size)
    if clutter == 0:
        return out
    canvas, half = templates(size)
    m = n * clutter
    rows = torch.from_numpy(rng.integers(0, canvas.shape[0], m))
    angle = _uniform(rng, -np.pi, np.pi, m)
    ink, grid = _place(
        canvas[rows],
        half[rows],
        _uniform(rng, *HEIGHT, m),
        angle,
        _uniform(rng, *ASPECT, m),
        _uniform(rng, -1, 1, (m, 2)),
        size,
    )
    # keep the side of a line through the glyph (template coordinates): about half a digit
    normal = _rotation(_uniform(rng, -np.pi, np.pi, m))[:, :, 0]  # (m, 2) unit vectors
    offset = _uniform(rng, -0.3, 0.3, m)
    side = torch.einsum("mhwc,mc->mhw", grid, normal) - offset[:, None, None]
    ink = ink * torch.sigmoid(CUT_SOFTNESS * side)[:, None]
    return ink.view(n, clutter, size, size).amax(dim=1, keepdim=True)


def _texture(rng: np.random.Generator, n: int, size: int) -> torch.Tensor:
    """Band-pass noise (N, 3, S, S) with unit std per image and channel."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius = np.hypot(fy, fx)
    gain = ((radius >= BAND[0]) & (radius <= BAND[1])).astype(np.float32)
    white = rng.standard_normal((n, 3, size, size), dtype=np.float32)
    tex = np.fft.irfft2(np.fft.rfft2(white) * gain, s=(size, size)).astype(np.float32)
    tex /= tex.std(axis=(2, 3), keepdims=True) + 1e-6
    return torch.from_numpy(tex)


def _draw(
    rng: np.random.Generator,
    n: int,
    size: int,
    clutter: int,
    texture: float,
    colour: float,
    rotation: float,
    contrast: float = 0.0,
    brightness: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    y = _balanced_labels(rng, n, len(CLASSES))
    ink = torch.maximum(_digits(rng, y, size, rotation), _fragments(rng, n, clutter, size))  # (N,1,S,S)
    background = BACKGROUND + colour * torch.from_numpy(rng.standard_normal((n, 3, 1, 1), dtype=np.float32))
    paint = INK + colour * torch.from_numpy(rng.standard_normal((n, 3, 1, 1), dtype=np.float32))
    x = background + (paint - background) * ink + texture * _texture(rng, n, size)
    # drawn last and only when on, so that the images at the defaults stay those drawn before
    if contrast:
        gain = torch.from_numpy(np.exp(contrast * rng.standard_normal((n, 1, 1, 1))).astype(np.float32))
        centre = x.mean(dim=(1, 2, 3), keepdim=True)
        x = centre + (x - centre) * gain
    if brightness:
        x = x + brightness * torch.from_numpy(rng.standard_normal((n, 1, 1, 1), dtype=np.float32))
    return (x - MEAN) / STD, torch.from_numpy(y)


def random_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    """``data.shift``: each image (N, C, H, W) rolled circularly by up to ``shift`` pixels in
    each direction, drawn from torch's global RNG (which the runner seeds); one gather."""
    n, c, h, w = x.shape
    dev = x.device
    dy = torch.randint(-shift, shift + 1, (n, 1), device=dev)
    dx = torch.randint(-shift, shift + 1, (n, 1), device=dev)
    rows = (torch.arange(h, device=dev) - dy) % h  # (N, H): source row of each output row
    cols = (torch.arange(w, device=dev) - dx) % w
    idx = (rows[:, :, None] * w + cols[:, None, :]).view(n, 1, h * w)
    return x.reshape(n, c, h * w).gather(2, idx.expand(n, c, h * w)).view(n, c, h, w)


KNOBS: dict[str, Knob] = {
    "size": Knob(lambda v: _is_int(v) and 12 <= v <= 64, "an int in [12, 64] (pixels)"),
    "clutter": Knob(lambda v: _is_int(v) and 0 <= v <= 32, "an int in [0, 32] (fragments per image)"),
    "texture": Knob(lambda v: _is_real(v) and 0 <= v <= 10, "a number in [0, 10]"),
    "colour": Knob(lambda v: _is_real(v) and 0 <= v <= 2, "a number in [0, 2]"),
    "contrast": Knob(lambda v: _is_real(v) and 0 <= v <= 2, "a number in [0, 2] (std of the log gain)"),
    "brightness": Knob(lambda v: _is_real(v) and 0 <= v <= 2, "a number in [0, 2]"),
    "shift": Knob(lambda v: _is_int(v) and 0 <= v <= 8, "an int in [0, 8] (pixels; 0: off)"),
    "rotation": Knob(lambda v: _is_real(v) and 0 <= v <= 180, "a number of degrees in [0, 180]"),
}


@register_dataset("glyphs")
def make_glyphs(
    *,
    model_modality: str,
    train_size: int | None = TRAIN_SIZE,
    test_size: int | None = TEST_SIZE,
    seed: int = 0,
    size: int = 16,
    clutter: int = 0,
    texture: float = 0.35,
    colour: float = 0.15,
    rotation: float = 20.0,
    contrast: float = 0.0,
    brightness: float = 0.0,
    shift: int = 0,
) -> Dataset:
    """Generate the glyph task; ``seed`` is the data seed (independent of the run seed); sizes
    ``None`` mean the defaults. Every argument is a key of ``conf/data/glyphs.yaml``, its values
    in :data:`KNOBS`. Raises :class:`ConfigError` naming ``data.<key>`` for an unusable one."""
    knobs = dict(
        size=size,
        clutter=clutter,
        texture=texture,
        colour=colour,
        rotation=rotation,
        contrast=contrast,
        brightness=brightness,
        shift=shift,
    )
    for key, value in knobs.items():
        if not KNOBS[key].ok(value):
            raise ConfigError(f"data.{key}", value, f"must be {KNOBS[key].works}")
    if not _is_int(seed) or not 0 <= seed < 2**32:
        raise ConfigError("data.seed", seed, "must be an int in [0, 2**32)")
    train_size = _size("train_size", train_size, TRAIN_SIZE)
    test_size = _size("test_size", test_size, TEST_SIZE)
    check_generated_size(train_size, test_size, 3 * int(size) * int(size))
    _, train, test = _streams(int(seed))
    options = dict(
        size=int(size),
        clutter=int(clutter),
        texture=float(texture),
        colour=float(colour),
        contrast=float(contrast),
        brightness=float(brightness),
    )
    x_tr, y_tr = _draw(train, train_size, rotation=float(rotation), **options)
    x_te, y_te = _draw(test, test_size, rotation=float(rotation), **options)
    return Dataset(
        name="glyphs",
        modality="image",
        x_train=x_tr.contiguous(),
        y_train=y_tr,
        x_test=x_te.contiguous(),
        y_test=y_te,
        num_classes=len(CLASSES),
        augment=functools.partial(random_shift, shift=int(shift)) if shift else None,
    )
