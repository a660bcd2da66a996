"""scripts/calibrate.py: the between-image share and the photographs it reads."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from conftest import REPO

from normbench.errors import ConfigError

spec = importlib.util.spec_from_file_location("calibrate", REPO / "scripts" / "calibrate.py")
calibrate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(calibrate)


def test_between_image_share_is_the_variance_of_image_means_over_the_total():
    torch.manual_seed(0)
    flat = torch.randn(50, 3, 1, 1).expand(50, 3, 4, 4)  # every pixel its image's value
    assert calibrate.between_image_share(flat) == pytest.approx(1.0)
    centred = torch.randn(50, 3, 4, 4)
    centred = centred - centred.mean(dim=(2, 3), keepdim=True)  # every image's mean 0
    assert calibrate.between_image_share(centred) == pytest.approx(0.0, abs=1e-12)
    half = flat + centred * flat.std() / centred.std()
    assert calibrate.between_image_share(half) == pytest.approx(0.5, abs=0.05)


def test_photo_crops_come_from_the_installed_photographs_reproducibly():
    a, b = calibrate.photo_crops(20, 16, 4, seed=0), calibrate.photo_crops(20, 16, 4, seed=0)
    assert a.shape == (20, 3, 16, 16) and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1 and a.std() > 0.05
    assert not torch.equal(a, calibrate.photo_crops(20, 16, 4, seed=1))


def test_every_photograph_is_read_from_disk_without_a_download(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("the calibration must not download")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert len(set(calibrate.PHOTOGRAPHS)) == len(calibrate.PHOTOGRAPHS) >= 6
    for name in calibrate.PHOTOGRAPHS:
        image = calibrate._photograph(name)
        assert image.mode == "RGB" and min(image.size) >= 256, name
        crops = calibrate.photo_crops(4, 16, 4, seed=0, names=(name,))
        assert crops.shape == (4, 3, 16, 16), name


def test_photo_crops_draw_equally_from_each_photograph_in_a_random_order(monkeypatch):
    from PIL import Image

    shades = {"black": 0, "white": 255}
    monkeypatch.setattr(
        calibrate, "_photograph", lambda name: Image.new("RGB", (128, 128), (shades[name],) * 3)
    )
    crops = calibrate.photo_crops(40, 16, 4, seed=0, names=("black", "white"))
    white = crops.mean(dim=(1, 2, 3)) == 1
    assert white.sum() == 20 and (crops.mean(dim=(1, 2, 3))[~white] == 0).all()
    assert 0 < white[:20].sum() < 20  # shuffled: a batch of 2 is not always one photograph twice


def test_json_holds_the_measured_numbers_and_the_report_reads_them(tmp_path, monkeypatch):
    pytest.importorskip("skimage")
    from normbench.analysis import load
    from normbench.report.calibration import calibration_section, read

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the test process's threads stay
    path = tmp_path / "calibration.json"
    argv = ["--no-spread", "--images", "8", "--depth", "8", "--glyphs", "colour=0.2,contrast=0.7"]
    calibrate.main([*argv, "--json", str(path)])
    cal = read(path)
    assert cal.setup == {
        "images": 8,
        "batch": 2,
        "crop": 16,
        "downscale": 4,
        "seed": 0,
        "depth": 8,
        "width": 8,
        "zero_init_residual": 0,
    }
    assert len(cal.layers) == 9 and cal.layers[0] == "stem.1"  # ResNet-8: 1 + 3 x 2 + 2 shortcuts
    ((settings, task),) = cal.glyphs
    assert settings == {"colour": 0.2, "contrast": 0.7}
    photos = calibrate.photo_crops(8, 16, 4, seed=0)
    assert cal.photographs.share == pytest.approx(calibrate.between_image_share(photos))
    assert len(task.mean_shift) == len(task.log_var) == 9 and min(task.log_var) > 0
    md = "\n".join(str(b.content) for b in calibration_section(tmp_path, load(tmp_path).runs))
    assert "ResNet-8" in md and "ignored" not in md


def test_a_data_config_name_is_measured_from_its_own_file():
    # scripts/main.sh calibrates the study's task by name, so the numbers live in one file
    settings = calibrate.parse_settings("photolike")
    text = (REPO / "conf" / "data" / "photolike.yaml").read_text()
    for key in ("texture", "colour", "brightness", "contrast"):
        assert f"{key}: {settings[key]}" in text
    assert "shift" not in settings  # it moves pixels, not their statistics
    assert calibrate.parse_settings("colour=0.5") == {"colour": 0.5}
    with pytest.raises(ConfigError, match="not glyphs"):
        calibrate.parse_settings("cifar10")
    with pytest.raises(ConfigError, match="no conf/data/photolikee.yaml; one of .*photolike"):
        calibrate.parse_settings("photolikee")


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("photolike,texture=0.6", "'photolike' is not key=number with a key of size, clutter"),
        ("texture=x", "'texture=x' is not key=number"),
        ("shift=2", "'shift=2' is not key=number"),  # it moves pixels, not their statistics
        ("colour", "no conf/data/colour.yaml"),
        ("texture=99", "texture=99 must be a number in"),
        ("clutter=1.5", "clutter=1.5 must be an int"),
    ],
)
def test_a_bad_glyphs_setting_is_one_line_before_the_work(spec, says):
    with pytest.raises(ConfigError, match=says):
        calibrate.parse_settings(spec)


def test_the_command_says_a_bad_setting_in_one_line_and_exits_2(capsys):
    with pytest.raises(SystemExit) as stop:
        calibrate.main(["--no-spread", "--glyphs", "texture=99"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --glyphs=texture=99: texture=99 must be") and err.count("\n") == 1


def test_an_int_setting_stays_an_int():  # clutter takes an int; "2" is one
    assert calibrate.parse_settings("clutter=2,texture=0.3") == {"clutter": 2, "texture": 0.3}
