"""scripts/calibrate.py: the between-image share and the photographs it reads."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from conftest import REPO

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
