"""The report of the GroupNorm paper's Figure 1 study: the five-point curve after the claims
table, the per-layer batch-statistics noise table, and the calibration from calibration.json
(a file of the results folder, so hostile input like every other file there)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fake_results import add_bn_noise, write_sweep

from normbench.analysis import figures, load
from normbench.report import Options, build_report
from normbench.report import calibration as cal_mod
from normbench.report.calibration import Calibration, Measured, calibration_section
from normbench.report.document import Document
from normbench.report.render import to_html, to_latex, to_markdown
from normbench.report.sections import small_batch_figure

# its module fixtures build reports (seconds each): its tests run on one worker, which builds each once
pytestmark = pytest.mark.xdist_group("test_report_fig1")


BATCHES = (2, 4, 8, 16, 32)
LAYERS = ("stem.1", "stages.0.0.norm1", "stages.2.0.shortcut.1")


def noise_of(layer: int, batch: int, seed: int) -> tuple[float, float]:
    """Made-up noise: falls with the batch, a little different per seed."""
    return (0.4 / batch + 0.01 * layer + 0.002 * seed, 1.2 / batch + 0.02 * layer + 0.004 * seed)


@pytest.fixture(scope="module")
def fig1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BN and GN at five per-device batches on 8 simulated devices, two seeds; BN's runs
    logged bn_noise; a valid calibration.json beside the runs."""
    root = write_sweep(
        tmp_path_factory.mktemp("fig1") / "small_batch",
        norms=("batch", "group"),
        batches=BATCHES,
        seeds=(0, 1),
        model="resnet",
        devices=8,
    )
    for batch in BATCHES:
        for seed in (0, 1):
            noise = {name: noise_of(i, batch, seed) for i, name in enumerate(LAYERS)}
            add_bn_noise(root / f"batch={batch},norm=batch,seed={seed}", noise)
    cal_mod.write(calibration(), root / cal_mod.FILE)
    build_report(root)
    return root


def calibration(layers: tuple[str, ...] = LAYERS) -> Calibration:
    photo = Measured(0.5, tuple(0.1 * (i + 1) for i in range(len(layers))), (0.3,) * len(layers))
    task = Measured(0.25, tuple(0.05 * (i + 1) for i in range(len(layers))), (0.15,) * len(layers))
    setup = {"images": 1000, "batch": 2, "crop": 16, "downscale": 4, "seed": 0, "depth": 8, "width": 16}
    setup["zero_init_residual"] = 1  # as the fake runs
    return Calibration(setup, layers, photo, (({"colour": 0.2, "contrast": 0.7}, task),))


def chunks(md: str) -> list[str]:
    return md.split("\n\n")


def md_table(md: str, caption_start: str) -> list[list[str]]:
    """The cells of the table whose caption starts with ``caption_start``."""
    parts = chunks(md)
    at = next(i for i, c in enumerate(parts) if c.startswith(f"**{caption_start}"))
    lines = parts[at + 1].splitlines()
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in [lines[0], *lines[2:]]]


@pytest.mark.slow
def test_the_small_batch_figure_sits_right_after_the_claims_table(fig1: Path) -> None:
    md = (fig1 / "report.md").read_text()
    parts = chunks(md)
    table = next(i for i, c in enumerate(parts) if c.startswith("**Claims checked against these runs"))
    assert parts[table + 2].startswith("![Figure 2. Small-batch degradation")
    assert md.index("## Claims") < md.index("![Figure 2.") < md.index("## What was run")
    # drawn once: the Figures section points to it
    assert md.count("](figures/small_batch.png)") == 1
    assert "Figure 2 (small_batch): shown under Claims, after the claims table." in md
    assert (fig1 / "report.html").read_text().count("Figure 2. Small-batch degradation") == 2  # alt, caption


@pytest.mark.slow
def test_the_batch_axis_names_the_per_device_and_the_sgd_batch(fig1: Path) -> None:
    res = load(fig1)
    fig = figures.small_batch(res, figures.norm_styles(res.runs["norm"]))
    assert fig.axes[0].get_xlabel() == ("per-device batch (the norms' batch)\nSGD batch = batch x 8 devices")
    one_device = res.runs.assign(devices=1)
    assert figures.batch_axis_label(one_device) == "per-device batch (the norms' batch)"
    assert figures.batch_axis_label(res.runs.drop(columns="devices")) == figures.PER_DEVICE


@pytest.mark.slow
def test_without_a_batch_sweep_the_figure_stays_among_the_figures(tmp_path: Path) -> None:
    root = write_sweep(tmp_path / "one", norms=("batch", "group"), batches=(8,), seeds=(0, 1))
    assert small_batch_figure(load(root), Options(), tmp_path / "figures") == []
    md = (Path(build_report(root)).parent / "report.md").read_text()
    assert "![Figure 2." not in md and "Figure 2 (small_batch): not drawn" in md


@pytest.mark.slow
def test_the_noise_table_is_layer_by_per_device_batch_mean_over_seeds(fig1: Path) -> None:
    md = (fig1 / "report.md").read_text()
    assert "## Batch-statistics noise per layer" in md
    assert "the trained model" in md and "scripts/calibrate.py measures the same for the untrained" in md
    rows = md_table(md, "norm=batch: mean shift / |log var| per layer, mean over n=2 seed(s)")
    assert rows[0] == ["layer", *(f"batch={b}" for b in BATCHES)]
    assert [r[0] for r in rows[1:]] == [*LAYERS, "mean over layers"]
    seeds = [noise_of(1, 4, s) for s in (0, 1)]  # stages.0.0.norm1 at batch 4
    expected = f"{sum(m for m, _ in seeds) / 2:.3f} / {sum(v for _, v in seeds) / 2:.3f}"
    assert rows[2][2] == expected
    layers = [[noise_of(i, 32, s) for s in (0, 1)] for i in range(len(LAYERS))]
    mean = sum(p[0] for layer in layers for p in layer) / 6
    assert rows[-1][-1].startswith(f"{mean:.3f} / ")
    assert "norm=group: mean shift" not in md  # GN has no batch statistics: no table


@pytest.mark.slow
def test_a_valid_calibration_renders_both_tables_in_every_format(fig1: Path) -> None:
    md = (fig1 / "report.md").read_text()
    assert "## Calibration: task vs photographs" in md
    shares = md_table(md, "Between-image share of pixel variance")
    assert shares[1] == ["photographs", "0.500", "+0%"]
    assert shares[2] == ["task (colour=0.2, contrast=0.7)", "0.250", "-50%"]
    noise = md_table(md, "Batch-statistics noise per BN layer, untrained model, batch 2")
    assert noise[0] == [
        "layer",
        "photographs",
        "task (colour=0.2, contrast=0.7)",
        "ratio (colour=0.2, contrast=0.7)",
    ]
    assert noise[1] == ["stem.1", "0.100 / 0.300", "0.050 / 0.150", "0.500 / 0.500"]
    assert noise[-1][0] == "mean over layers" and noise[-1][3] == "0.500 / 0.500"
    assert "Another model than the runs'" not in md  # depth 8, width 16: the fake runs' ResNet
    assert "Calibration: task vs photographs" in (fig1 / "report.html").read_text()
    assert "task (colour=0.2, contrast=0.7)" in (fig1 / "report.tex").read_text()


def section(tmp_path: Path, text: str | bytes, runs=None) -> list:
    path = tmp_path / cal_mod.FILE
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return calibration_section(tmp_path, runs if runs is not None else load(tmp_path).runs)


def valid() -> dict:
    return json.loads(cal_mod.to_json(calibration()))


def _set(tree: dict, dotted: str, value: object) -> dict:
    *parents, leaf = dotted.split(".")
    node = tree
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    node[int(leaf) if leaf.isdigit() else leaf] = value
    return tree


HOSTILE = {
    "not JSON": "{not json",
    "empty": "",
    "a list": "[1, 2]",
    "NaN share": cal_mod.to_json(calibration()).replace('"share": 0.5', '"share": NaN'),
    "Infinity": cal_mod.to_json(calibration()).replace('"share": 0.5', '"share": 1e999'),
    "huge integer": cal_mod.to_json(calibration()).replace('"seed": 0', '"seed": ' + "9" * 5000),
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "too big": " " * (cal_mod.MAX_BYTES + 1),
    "not UTF-8": b"\xff\xfe{}",
    "other format": json.dumps(_set(valid(), "format", "something else")),
    "share as text": json.dumps(_set(valid(), "photographs.share", "0.5")),
    "share a flag": json.dumps(_set(valid(), "photographs.share", True)),
    "share above 1": json.dumps(_set(valid(), "photographs.share", 3.0)),
    "negative noise": json.dumps(_set(valid(), "photographs.mean_shift.0", -1.0)),
    "noise as text": json.dumps(_set(valid(), "glyphs.0.log_var.1", "x")),
    "layers not a list": json.dumps(_set(valid(), "layers", "stem.1")),
    "layer a number": json.dumps(_set(valid(), "layers.0", 5)),
    "layer too long": json.dumps(_set(valid(), "layers.0", "x" * 10_000)),
    "huge list": json.dumps(_set(valid(), "layers", ["a"] * 100_000)),
    "values for other layers": json.dumps(_set(valid(), "photographs.log_var", [0.1])),
    "settings a list": json.dumps(_set(valid(), "glyphs.0.settings", [1])),
    "setting as text": json.dumps(_set(valid(), "glyphs.0.settings.colour", "red")),
    "setup float": json.dumps(_set(valid(), "setup.batch", 2.5)),
    "setup missing": json.dumps(_set(valid(), "setup", {"images": 1})),
    "glyphs not a list": json.dumps(_set(valid(), "glyphs", {"a": 1})),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_damaged_or_crafted_calibration_is_one_line_not_a_crash(tmp_path: Path, name: str) -> None:
    blocks = section(tmp_path, HOSTILE[name])
    assert [b.kind for b in blocks] == ["h2", "p"], name
    assert blocks[1].content.startswith("calibration.json ignored: ") and "\n" not in blocks[1].content
    assert len(blocks[1].content) < 250  # says why, never quotes the file


def test_a_calibration_that_is_not_a_regular_file_is_not_read(tmp_path: Path) -> None:
    (tmp_path / cal_mod.FILE).mkdir()
    assert calibration_section(tmp_path, load(tmp_path).runs)[1].content == (
        "calibration.json ignored: not a regular file"
    )
    os.rmdir(tmp_path / cal_mod.FILE)
    os.mkfifo(tmp_path / cal_mod.FILE)  # opening it would wait for a writer forever
    assert "not a regular file" in calibration_section(tmp_path, load(tmp_path).runs)[1].content
    os.remove(tmp_path / cal_mod.FILE)
    (tmp_path / cal_mod.FILE).symlink_to("/dev/zero")  # reading it would never end
    assert "not a regular file" in calibration_section(tmp_path, load(tmp_path).runs)[1].content


INJECTION = (
    "<script>alert(1)</script>",
    "[click](https://example.org)",
    "a | b",
    "\\input{/etc/passwd}",
    "two\nlines `code`",
)


def test_layer_and_setting_names_are_escaped_in_every_format(tmp_path: Path) -> None:
    crafted = calibration(INJECTION)
    crafted = Calibration(
        crafted.setup, crafted.layers, crafted.photographs, (({"<b>x": 0.5}, crafted.glyphs[0][1]),)
    )
    cal_mod.write(crafted, tmp_path / cal_mod.FILE)
    doc = Document("t", calibration_section(tmp_path, load(tmp_path).runs))
    md, html, tex = to_markdown(doc, tmp_path), to_html(doc), to_latex(doc)
    assert "<script" not in html and "<b>x" not in html and "&lt;script&gt;" in html
    assert "\\<script>" in md and "\\[click\\](https" not in md and "[click\\](https" in md
    assert "a \\| b" in md and "two lines" in md
    assert "\\textbackslash input\\{/etc/passwd\\}" in tex and "\\input{" not in tex  # pandas' escape
    assert "\\<b>x" in md


@pytest.mark.slow
def test_a_calibration_of_another_model_says_so(fig1: Path, tmp_path: Path) -> None:
    other = calibration()
    cal_mod.write(
        Calibration({**other.setup, "depth": 14}, other.layers, other.photographs, other.glyphs),
        tmp_path / cal_mod.FILE,
    )
    blocks = calibration_section(tmp_path, load(fig1).runs)
    assert any(
        "calibrated at depth 14, the runs use model.depth=8" in b.content for b in blocks if b.kind == "p"
    )
    # a zeroed residual scale changes what the later layers see: also another model
    cal_mod.write(
        Calibration({**other.setup, "zero_init_residual": 0}, other.layers, other.photographs, other.glyphs),
        tmp_path / cal_mod.FILE,
    )
    says = [b.content for b in calibration_section(tmp_path, load(fig1).runs) if b.kind == "p"]
    mismatch = "calibrated at zero_init_residual 0, the runs use model.zero_init_residual=1"
    assert any(mismatch in p for p in says)


@pytest.mark.slow
def test_no_calibration_file_no_section(fig1: Path, tmp_path: Path) -> None:
    assert calibration_section(tmp_path, load(fig1).runs) == []


def test_one_run_far_above_the_rest_puts_the_error_axis_on_a_symmetric_log(tmp_path: Path) -> None:
    # small_batch's reference: cells under 1% error beside one LN seed at chance (87.5%), which
    # flattened every curve on a linear axis
    def error(norm: str, batch: int, seed: int) -> float:
        return 87.5 if (norm, batch, seed) == ("layer", 32, 1) else 0.2 + 0.1 * seed

    wide = load(write_sweep(tmp_path / "wide", norms=("batch", "layer"), batches=(2, 32), error=error))
    ax = figures.small_batch(wide, figures.norm_styles(wide.runs["norm"])).axes[0]
    assert ax.get_yscale() == "symlog" and ax.get_ylim()[0] == 0.0
    assert ax.get_ylabel().endswith("linear to 0.1, log above")
    near = load(write_sweep(tmp_path / "near", norms=("batch", "layer"), batches=(2, 32)))
    assert figures.small_batch(near, figures.norm_styles(near.runs["norm"])).axes[0].get_yscale() == "linear"
