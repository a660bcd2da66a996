"""``calibration.json``: what ``scripts/calibrate.py --json`` measured (the glyph task against
photographs), written there and read here, and the report's section "Calibration: task vs
photographs".

The file sits in a results folder, which may come from anyone (docs/design.md §4): it is read as
JSON only, at most :data:`MAX_BYTES`, every field checked for its type and size, and any problem
makes the report say one line, never fail. Its strings (layer names, setting keys) reach the
report only as table cells, which every renderer escapes."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from normbench.report.document import Block
from normbench.report.noise import MEAN_OVER_LAYERS, fmt_pair
from normbench.run.record import parse_summary

FILE = "calibration.json"
FORMAT = "normbench calibration 1"
SETUP_KEYS = ("images", "batch", "crop", "downscale", "seed", "depth", "width", "zero_init_residual")
MODEL_KEYS = ("depth", "width", "zero_init_residual")  # the model measured: the runs' must match
MAX_BYTES = 1_000_000
MAX_LAYERS = 500  # a ResNet-110 has 109 BN layers
MAX_SETS = 20
MAX_SETTINGS = 20
MAX_NAME = 200
MAX_INT = 10**9


class Invalid(ValueError):
    """Why a calibration.json is not used: one line, naming fields, never quoting them."""


@dataclass(frozen=True)
class Measured:
    """One image set: the between-image share of pixel variance and, per BN layer of the
    untrained model, the mean shift and |log variance ratio| of a batch's statistics."""

    share: float
    mean_shift: tuple[float, ...]
    log_var: tuple[float, ...]


@dataclass(frozen=True)
class Calibration:
    setup: dict[str, int]  # SETUP_KEYS: images per set, batch measured, crop, downscale, seed, model
    layers: tuple[str, ...]
    photographs: Measured
    glyphs: tuple[tuple[dict[str, float], Measured], ...]  # (settings, measured); {}: the defaults


# ---------------------------------------------------------------- writing


def to_json(cal: Calibration) -> str:
    """The file's text; allow_nan=False: a non-finite measurement fails here, not in a report."""
    record = {
        "format": FORMAT,
        "setup": cal.setup,
        "layers": list(cal.layers),
        "photographs": _measured_json(cal.photographs),
        "glyphs": [{"settings": s, **_measured_json(m)} for s, m in cal.glyphs],
    }
    return json.dumps(record, indent=1, allow_nan=False) + "\n"


def _measured_json(m: Measured) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(m).items()}


def write(cal: Calibration, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(to_json(cal))


# ---------------------------------------------------------------- reading


def read(path: Path) -> Calibration:
    """The calibration in ``path``; :class:`Invalid` with the reason for anything else. Only
    a regular file is opened (a FIFO or a device would block or never end)."""
    path = Path(path)
    if not path.is_file():
        raise Invalid("not a regular file")
    with path.open("rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise Invalid(f"larger than {MAX_BYTES} bytes")
    try:
        tree = parse_summary(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise Invalid("not UTF-8 text") from None
    except ValueError as err:  # json's message names a line and column, not the content
        raise Invalid(f"not valid JSON ({str(err)[:120]})") from None
    return parse(tree)


def parse(tree: Any) -> Calibration:
    """A calibration from parsed JSON, every field checked (:class:`Invalid` on the first bad one)."""
    tree = _mapping(tree, "the file", ("format", "setup", "layers", "photographs", "glyphs"))
    if tree["format"] != FORMAT:
        raise Invalid(f"format is not {FORMAT!r}")
    setup = _mapping(tree["setup"], "setup", SETUP_KEYS)
    layers = _list(tree["layers"], "layers", MAX_LAYERS)
    for i, name in enumerate(layers):
        _name(name, f"layers[{i}]")
    glyphs = _list(tree["glyphs"], "glyphs", MAX_SETS)
    return Calibration(
        setup={k: _int(setup[k], f"setup.{k}") for k in SETUP_KEYS},
        layers=tuple(layers),
        photographs=_measured(tree["photographs"], "photographs", len(layers)),
        glyphs=tuple(_glyph_set(g, f"glyphs[{i}]", len(layers)) for i, g in enumerate(glyphs)),
    )


def _glyph_set(tree: Any, where: str, layers: int) -> tuple[dict[str, float], Measured]:
    settings = _mapping(tree, where, ("settings",))["settings"]
    if not isinstance(settings, dict) or len(settings) > MAX_SETTINGS:
        raise Invalid(f"{where}.settings is not a mapping of at most {MAX_SETTINGS} keys")
    for key, value in settings.items():
        _name(key, f"a key of {where}.settings")
        _number(value, f"{where}.settings")
    return dict(settings), _measured(tree, where, layers)


def _measured(tree: Any, where: str, layers: int) -> Measured:
    tree = _mapping(tree, where, ("share", "mean_shift", "log_var"))
    share = _number(tree["share"], f"{where}.share")
    if not 0 <= share <= 1:
        raise Invalid(f"{where}.share is outside [0, 1]")
    per_layer = {}
    for key in ("mean_shift", "log_var"):
        values = _list(tree[key], f"{where}.{key}", MAX_LAYERS)
        if len(values) != layers:
            raise Invalid(f"{where}.{key} has {len(values)} values for {layers} layers")
        per_layer[key] = tuple(_number(v, f"{where}.{key}[{i}]", low=0.0) for i, v in enumerate(values))
    return Measured(share, **per_layer)


def _mapping(tree: Any, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(tree, dict):
        raise Invalid(f"{where} is not a JSON object")
    missing = [k for k in keys if k not in tree]
    if missing:
        raise Invalid(f"{where} lacks {', '.join(missing)}")
    return tree


def _list(value: Any, where: str, most: int) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(f"{where} is not a list")
    if len(value) > most:
        raise Invalid(f"{where} has {len(value)} entries, at most {most}")
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        raise Invalid(f"{where} is not a string of 1 to {MAX_NAME} characters")
    return value


def _number(value: Any, where: str, low: float = -math.inf) -> float:
    """A finite number (bool is not one, though Python counts it as an int) at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid(f"{where} is not a finite number")
    if value < low:
        raise Invalid(f"{where} is below {low}")
    return float(value)


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise Invalid(f"{where} is not an integer in [0, {MAX_INT}]")
    return value


# ---------------------------------------------------------------- the report's section


def settings_label(settings: dict[str, float]) -> str:
    """ "colour=0.2, contrast=0.7"; "defaults" for none (conf/data/glyphs.yaml as it is)."""
    return ", ".join(f"{k}={v:g}" for k, v in settings.items()) or "defaults"


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference > 0 else math.nan


def share_table(cal: Calibration) -> pd.DataFrame:
    ref = cal.photographs.share
    sets = [("photographs", cal.photographs), *((f"task ({settings_label(s)})", m) for s, m in cal.glyphs)]
    return pd.DataFrame(
        [
            {
                "images": name,
                "between-image share": f"{m.share:.3f}",
                "vs photographs": "-" if ref <= 0 else f"{m.share / ref - 1:+.0%}",
            }
            for name, m in sets
        ]
    )


def _layer_pairs(m: Measured) -> list[tuple[float, float]]:
    """Per layer and, last, the mean over the layers: (mean shift, |log var|)."""
    pairs = list(zip(m.mean_shift, m.log_var))
    if not pairs:
        return [(math.nan, math.nan)]
    return [*pairs, (sum(p[0] for p in pairs) / len(pairs), sum(p[1] for p in pairs) / len(pairs))]


def noise_table(cal: Calibration) -> pd.DataFrame:
    """Layer x (photographs, then per glyph setting: task, ratio task / photographs)."""
    ref = _layer_pairs(cal.photographs)
    table = pd.DataFrame({"layer": [*cal.layers, MEAN_OVER_LAYERS]})
    table["photographs"] = [fmt_pair(m, v) for m, v in ref]
    for settings, measured in cal.glyphs:
        label = settings_label(settings)
        pairs = _layer_pairs(measured)
        table[f"task ({label})"] = [fmt_pair(m, v) for m, v in pairs]
        table[f"ratio ({label})"] = [
            fmt_pair(_ratio(m, rm), _ratio(v, rv)) for (m, v), (rm, rv) in zip(pairs, ref)
        ]
    return table


def _note(cal: Calibration) -> str:
    s = cal.setup
    return (
        f"From calibration.json (scripts/calibrate.py --json): {s['images']} images per set, "
        f"{s['crop']}x{s['crop']} pixels; photographs: random crops of six colour photographs of "
        f"natural scenes, downscaled 1/{s['downscale']}; task: the glyph images with the settings "
        f"named; seed {s['seed']}. Between-image share: per channel, the variance of the images' "
        f"means over the total pixel variance (high: images differ in overall colour and "
        f"brightness, which batch statistics see). Noise: per BN layer of the untrained "
        f"ResNet-{s['depth']} (width {s['width']}, zero_init_residual {bool(s['zero_init_residual'])}, "
        f"norm=batch), how far the statistics of a batch "
        f"of {s['batch']} sit from the population's: mean shift in population SDs / |log variance "
        f"ratio|; ratio: task over photographs. The section Batch-statistics noise per layer, where "
        f"present, measures the trained model. Descriptive, not a test."
    )


def _model_mismatch(cal: Calibration, runs: pd.DataFrame) -> list[Block]:
    """A calibration of another depth, width or residual init than the runs' model measures other
    layers (a bool is its int: 0 or 1)."""
    lines = []
    for key in MODEL_KEYS:
        column = f"model.{key}"
        raw = runs[column].map(lambda v: int(v) if isinstance(v, bool) else v) if column in runs else None
        values = pd.to_numeric(raw, errors="coerce") if raw is not None else pd.Series(dtype=float)
        used = sorted(int(v) for v in values[values.abs() <= MAX_INT].unique())  # not NaN or inf
        if used and used != [cal.setup[key]]:
            runs_use = ", ".join(map(str, used))
            lines.append(f"calibrated at {key} {cal.setup[key]}, the runs use {column}={runs_use}")
    if not lines:
        return []
    return [Block("p", "**Another model than the runs':** " + "; ".join(lines) + ".")]


def calibration_section(results_dir: Path, runs: pd.DataFrame) -> list[Block]:
    """The section where ``results_dir`` holds calibration.json: the share table and the
    per-layer noise table; one line saying why where the file cannot be used."""
    path = Path(results_dir) / FILE
    if not path.exists() and not path.is_symlink():
        return []
    blocks = [Block("h2", "Calibration: task vs photographs")]
    try:
        cal = read(path)
    except (Invalid, OSError) as err:
        reason = str(err) if isinstance(err, Invalid) else type(err).__name__
        return blocks + [Block("p", f"{FILE} ignored: {reason}")]
    return blocks + [
        Block("p", _note(cal)),
        *_model_mismatch(cal, runs),
        Block("table", share_table(cal), "Between-image share of pixel variance"),
        Block(
            "table",
            noise_table(cal),
            f"Batch-statistics noise per BN layer, untrained model, batch {cal.setup['batch']}: "
            "mean shift / |log variance ratio|",
        ),
    ]
