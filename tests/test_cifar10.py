"""data=cifar10 on a fake CIFAR-10 in the official format: reading, tarball, download, subsets,
normalisation and augmentation. Nothing here touches the internet."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from normbench.data import build_dataset
from normbench.data.cifar10 import (
    CIFAR10_MD5,
    MEAN,
    ROOT_ENV,
    STD,
    RandomCropFlip,
    default_root,
)
from normbench.data.subsets import stratified_subset
from normbench.errors import ConfigError
from tests.cifar_fake import (
    ARCHIVE,
    FOLDER,
    closed_port_url,
    fake_cifar_files,
    make_fake_cifar,
    serve_directory,
)

CONF = Path(__file__).resolve().parents[1] / "conf" / "data" / "cifar10.yaml"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # urllib honours proxy variables; the local test server must be reached directly
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def cifar(root, **options):
    return build_dataset("cifar10", model_modality="image", root=str(root), **options)


def one_line_error(excinfo, key: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert msg.startswith(f"{key}="), msg
    return msg


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def leftovers(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()}


# ----------------------------------------------------------------------------- reading


def test_reads_official_layout(tmp_path):
    fake = make_fake_cifar(tmp_path, n_per_batch=20, n_test=30)
    ds = cifar(tmp_path)
    assert (ds.name, ds.modality, ds.num_classes) == ("cifar10", "image", 10)
    assert ds.x_train.shape == (100, 3, 32, 32) and ds.x_train.dtype == torch.uint8
    assert ds.x_test.shape == (30, 3, 32, 32) and ds.x_test.dtype == torch.uint8
    assert ds.y_train.dtype == torch.int64 and ds.y_test.dtype == torch.int64
    assert ds.y_train.tolist() == np.concatenate(fake.train_labels).tolist()
    assert ds.y_test.tolist() == fake.test_labels.tolist()
    assert ds.input_shape == (3, 32, 32)
    # The official row: R plane (row-major 32x32), then G, then B.
    rows = np.concatenate(fake.train_rows)
    for i, c, r, col in [(0, 0, 0, 0), (3, 1, 2, 5), (57, 2, 31, 30), (99, 0, 17, 31)]:
        assert ds.x_train[i, c, r, col].item() == rows[i, c * 1024 + r * 32 + col]
    assert ds.x_test[29, 2, 31, 31].item() == fake.test_rows[29, 3071]


def test_known_pixel_round_trips(tmp_path):
    files, rows, labels, _, _ = fake_cifar_files(10, 10)
    rows[1][4] = 0
    rows[1][4][1 * 1024 + 7 * 32 + 9] = 201  # image 4 of batch 2: green, row 7, column 9
    (tmp_path / FOLDER).mkdir()
    for i in range(5):
        batch = {b"data": rows[i], b"labels": [int(v) for v in labels[i]]}
        (tmp_path / FOLDER / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch, protocol=2))
    (tmp_path / FOLDER / "test_batch").write_bytes(files["test_batch"])
    x = cifar(tmp_path).x_train[14]
    assert x[1, 7, 9].item() == 201 and int(x.sum()) == 201


def test_numpy_1_pickles_load(tmp_path):
    # The official files (and numpy 1.x) name numpy.core.multiarray, which numpy 2 renamed.
    fake = make_fake_cifar(tmp_path, n_per_batch=10)
    for path in fake.folder.iterdir():
        data = path.read_bytes()
        path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert b"numpy.core.multiarray" in (fake.folder / "test_batch").read_bytes()
    ds = cifar(tmp_path)
    assert ds.x_test.reshape(20, -1).numpy().tolist() == fake.test_rows.tolist()


def test_batches_of_any_length(tmp_path):
    fake = make_fake_cifar(tmp_path, n_per_batch=[10, 23, 1, 40, 7], n_test=3)
    ds = cifar(tmp_path)
    assert len(ds.x_train) == len(ds.y_train) == 81 and len(ds.x_test) == 3
    flat = ds.x_train.reshape(81, -1).numpy()
    assert np.array_equal(flat, np.concatenate(fake.train_rows))  # batch order kept


def test_root_defaults_to_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "cache"))
    make_fake_cifar(tmp_path / "cache", n_per_batch=10)
    assert default_root() == tmp_path / "cache"
    ds = build_dataset("cifar10", model_modality="image", root=None)
    assert len(ds.x_train) == 50
    monkeypatch.delenv(ROOT_ENV)
    assert default_root() == Path.home() / ".cache" / "normbench"


def test_yaml_keys_are_the_function_arguments(tmp_path):
    make_fake_cifar(tmp_path, n_per_batch=10)
    cfg = OmegaConf.to_container(OmegaConf.load(CONF))
    assert cfg.pop("name") == "cifar10"
    assert cfg["root"] is None and cfg["download"] is True and cfg["augment"] is True
    cfg["root"] = str(tmp_path)
    ds = build_dataset("cifar10", model_modality="image", **cfg)
    assert len(ds.x_train) == 50 and ds.augment is not None


def test_missing_files_without_download(tmp_path):
    with pytest.raises(ConfigError) as exc:
        cifar(tmp_path / "empty", download=False)
    msg = one_line_error(exc, "data.root")
    assert str(tmp_path / "empty") in msg and ARCHIVE in msg and "data.download=true" in msg


def test_incomplete_folder_names_the_missing_file(tmp_path):
    fake = make_fake_cifar(tmp_path, n_per_batch=10)
    (fake.folder / "data_batch_3").unlink()
    with pytest.raises(ConfigError) as exc:
        cifar(tmp_path)
    assert "data_batch_3" in one_line_error(exc, "data.root")


def test_corrupt_pickle(tmp_path):
    fake = make_fake_cifar(tmp_path, n_per_batch=10)
    (fake.folder / "data_batch_2").write_bytes(b"\x80\x02}q\x00(garbage")
    with pytest.raises(ConfigError) as exc:
        cifar(tmp_path)
    msg = one_line_error(exc, "data.root")
    assert "data_batch_2 is not a CIFAR-10 batch" in msg


def test_wrong_contents_and_foreign_globals_are_refused(tmp_path):
    fake = make_fake_cifar(tmp_path, n_per_batch=10)
    bad = {b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]}
    (fake.folder / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(ConfigError, match=r"test_batch is not a CIFAR-10 batch.*3072"):
        cifar(tmp_path)

    class Boom:  # a pickle that would run code when loaded
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    (fake.folder / "test_batch").write_bytes(pickle.dumps({b"data": Boom()}, protocol=2))
    with pytest.raises(ConfigError, match="refusing global"):
        cifar(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_a_label_too_large_for_64_bits_is_named_as_such(tmp_path):
    fake = make_fake_cifar(tmp_path, n_per_batch=10)
    bad = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [10**30]}
    (fake.folder / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(ConfigError) as exc:
        cifar(tmp_path)
    msg = one_line_error(exc, "data.root")
    assert (
        "test_batch is not a CIFAR-10 batch (ValueError: labels are not integers 0..9 (dtype object; first "
        in msg
    )
    assert "labels for 1 images" not in msg


def test_an_empty_root_is_refused_not_the_current_directory(tmp_path, monkeypatch):
    make_fake_cifar(tmp_path, n_per_batch=10)
    monkeypatch.chdir(tmp_path)  # it would read the fake set here
    with pytest.raises(ConfigError) as exc:
        build_dataset("cifar10", model_modality="image", root="")
    assert one_line_error(exc, "data.root") == "data.root='': is empty; use a folder, or null for the default"


# ----------------------------------------------------------------------------- tarball


def test_tarball_with_matching_md5_is_extracted(tmp_path):
    fake = make_fake_cifar(tmp_path, n_per_batch=10, folder=False, tarball=True)
    ds = cifar(tmp_path, md5=fake.md5)
    assert len(ds.x_train) == 50
    assert ds.x_train.reshape(50, -1).numpy().tolist() == np.concatenate(fake.train_rows).tolist()
    assert leftovers(tmp_path) == {ARCHIVE, FOLDER}  # no temporary folder left
    assert cifar(tmp_path, md5="0" * 32).x_train.shape == (50, 3, 32, 32)  # folder now used as is


def test_tarball_with_wrong_md5_is_refused(tmp_path):
    fake = make_fake_cifar(tmp_path, n_per_batch=10, folder=False, tarball=True)
    with pytest.raises(ConfigError) as exc:
        cifar(tmp_path)  # the official MD5
    msg = one_line_error(exc, "data.root")
    assert fake.md5 in msg and CIFAR10_MD5 in msg
    assert leftovers(tmp_path) == {ARCHIVE}  # nothing half-extracted


@pytest.mark.parametrize("member", ["../evil", "/tmp/normbench-evil", "other/data_batch_1"])
def test_unsafe_tar_members_are_refused(tmp_path, member):
    files = fake_cifar_files(10)[0]
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(root / ARCHIVE, "w:gz") as tar:
        for name, data in [*((f"{FOLDER}/{n}", d) for n, d in files.items()), (member, b"x")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ConfigError, match="unsafe or unexpected member"):
        cifar(root, md5=md5_of(root / ARCHIVE))
    assert leftovers(root) == {ARCHIVE} and leftovers(tmp_path) == {"root"}
    assert not Path("/tmp/normbench-evil").exists()


def test_truncated_tarball(tmp_path):
    fake = make_fake_cifar(tmp_path, n_per_batch=10, folder=False, tarball=True)
    data = fake.archive.read_bytes()[:200]
    fake.archive.write_bytes(data)
    with pytest.raises(ConfigError, match="cannot be extracted"):
        cifar(tmp_path, md5=md5_of(fake.archive))
    assert leftovers(tmp_path) == {ARCHIVE}


# ----------------------------------------------------------------------------- download


def test_download_verify_and_move_in_place(tmp_path):
    fake = make_fake_cifar(tmp_path / "server", n_per_batch=10, folder=False, tarball=True)
    root = tmp_path / "data" / "nested"  # created on demand
    with serve_directory(tmp_path / "server") as base:
        ds = cifar(root, url=f"{base}/{ARCHIVE}", md5=fake.md5)
    assert len(ds.x_train) == 50
    assert (root / ARCHIVE).read_bytes() == fake.archive.read_bytes()
    assert leftovers(root) == {ARCHIVE, FOLDER}


def test_a_local_mirror_as_a_file_url_works(tmp_path):
    fake = make_fake_cifar(tmp_path / "mirror", n_per_batch=10, folder=False, tarball=True)
    root = tmp_path / "data"
    ds = cifar(root, url=fake.archive.resolve().as_uri(), md5=fake.md5)
    assert len(ds.x_train) == 50
    assert leftovers(root) == {ARCHIVE, FOLDER}


@pytest.mark.parametrize("url", ["notaurl", 5, "/a/path/without/scheme.tar.gz"])
def test_a_url_that_is_not_one_is_one_line_before_any_download(tmp_path, url):
    with pytest.raises(ConfigError) as exc:
        cifar(tmp_path / "data", url=url)
    msg = one_line_error(exc, "data.url")
    assert msg == (
        f"data.url={url}: is not a URL; use an https://, http://, ftp:// or file:// address of "
        f"{ARCHIVE}, or null for the official one"
    )
    assert not (tmp_path / "data").exists()


def test_download_with_wrong_md5_leaves_nothing(tmp_path):
    make_fake_cifar(tmp_path / "server", n_per_batch=10, folder=False, tarball=True)
    root = tmp_path / "data"
    root.mkdir()
    with serve_directory(tmp_path / "server") as base:
        url = f"{base}/{ARCHIVE}"
        with pytest.raises(ConfigError) as exc:
            cifar(root, url=url)  # the official MD5 cannot match
    msg = one_line_error(exc, "data.url")
    assert url in msg and CIFAR10_MD5 in msg and "discarded" in msg
    assert leftovers(root) == set()  # no partial file under any name


def test_failed_download_leaves_nothing(tmp_path):
    (tmp_path / "server").mkdir()
    root = tmp_path / "data"
    with serve_directory(tmp_path / "server") as base, pytest.raises(ConfigError) as exc:
        cifar(root, url=f"{base}/{ARCHIVE}")  # 404
    assert "404" in one_line_error(exc, "data.root")
    assert leftovers(root) == set()


def test_cut_off_download_leaves_nothing(tmp_path):
    fake = make_fake_cifar(tmp_path / "server", n_per_batch=10, folder=False, tarball=True)
    root = tmp_path / "data"
    with (
        serve_directory(tmp_path / "server", cut_after=100) as base,
        pytest.raises(ConfigError) as exc,
    ):
        cifar(root, url=f"{base}/{ARCHIVE}", md5=fake.md5)
    assert "cut off after 100 of" in one_line_error(exc, "data.root")
    assert leftovers(root) == set()


def test_no_network_says_where_to_put_the_file(tmp_path):
    url = closed_port_url()
    with pytest.raises(ConfigError) as exc:
        cifar(tmp_path, url=url)
    msg = one_line_error(exc, "data.root")
    assert url in msg and f"put {ARCHIVE}" in msg and str(tmp_path) in msg
    assert leftovers(tmp_path) == set()


# ----------------------------------------------------------------------------- subsets


def test_stratified_subsets_are_balanced_and_seeded(tmp_path):
    make_fake_cifar(tmp_path, n_per_batch=40, n_test=50)  # 20 and 5 images per class
    full = cifar(tmp_path)
    a = cifar(tmp_path, train_size=50, test_size=20, seed=3)
    b = cifar(tmp_path, train_size=50, test_size=20, seed=3)
    c = cifar(tmp_path, train_size=50, test_size=20, seed=4)
    assert a.x_train.shape == (50, 3, 32, 32) and a.x_test.shape == (20, 3, 32, 32)
    assert torch.bincount(a.y_train, minlength=10).tolist() == [5] * 10
    assert torch.bincount(a.y_test, minlength=10).tolist() == [2] * 10
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    assert not torch.equal(a.x_train, c.x_train) and not torch.equal(a.x_test, c.x_test)
    # a subset of the real rows, with their labels
    rows = {bytes(x.numpy()): int(y) for x, y in zip(full.x_train, full.y_train, strict=True)}
    assert all(rows[bytes(x.numpy())] == int(y) for x, y in zip(a.x_train, a.y_train, strict=True))
    assert len({bytes(x.numpy()) for x in a.x_train}) == 50
    # null is everything, in the original order
    assert torch.equal(cifar(tmp_path, train_size=None).x_train, full.x_train)


def test_stratified_subset_leftovers_and_unbalanced_classes():
    y = np.repeat(np.arange(3), [60, 30, 10])
    idx = stratified_subset(y, 10, seed=0)
    assert np.bincount(y[idx], minlength=3).tolist() == [6, 3, 1]
    counts = [np.bincount(y[stratified_subset(y, 11, seed=s)], minlength=3) for s in range(20)]
    assert all(c.sum() == 11 and abs(c - [6.6, 3.3, 1.1]).max() < 1 for c in counts)
    balanced = np.arange(100) % 10
    picks = [np.bincount(balanced[stratified_subset(balanced, 15, seed=s)]) for s in range(10)]
    assert all(sorted(p.tolist()) == [1] * 5 + [2] * 5 for p in picks)
    assert len({tuple(np.flatnonzero(p == 2)) for p in picks}) > 1  # ties broken by the seed


@pytest.mark.parametrize(
    "key,value,expect",
    [
        ("train_size", 0, "positive integer"),
        ("train_size", -5, "positive integer"),
        ("train_size", 51, "at most 50, the samples available"),
        ("test_size", 21, "at most 20, the samples available"),
        ("train_size", 2.5, "positive integer"),
        ("train_size", "all", "positive integer"),
        ("seed", -1, "non-negative integer"),
        ("download", "yes", "true or false"),
        ("augment", 1, "true or false"),
        ("md5", "abc", "32 hex digits"),
    ],
)
def test_bad_options(tmp_path, key, value, expect):
    make_fake_cifar(tmp_path, n_per_batch=10)
    with pytest.raises(ConfigError) as exc:
        cifar(tmp_path, **{key: value})
    msg = one_line_error(exc, f"data.{key}")
    assert msg.startswith(f"data.{key}={value}:") and expect in msg


# ----------------------------------------------------------------------------- batch transforms


def test_prepare_standardises_per_channel(tmp_path):
    make_fake_cifar(tmp_path, n_per_batch=10)
    ds = cifar(tmp_path)
    x = ds.x_train[:8]
    out = ds.prepare(x)
    assert out.dtype == torch.float32 and out.shape == x.shape
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    expected = (x.double() / 255 - mean.double()) / std.double()
    assert torch.allclose(out.double(), expected, atol=1e-5)
    assert ds.x_train.dtype == torch.uint8  # the stored data is untouched
    # an image at the dataset mean becomes zeros; one std above it becomes ones
    at_mean = (torch.tensor(MEAN) * 255).view(1, 3, 1, 1).expand(1, 3, 32, 32)
    z = ds.prepare(at_mean.round().to(torch.uint8))
    assert z.abs().max() < 0.01
    one_up = ((torch.tensor(MEAN) + torch.tensor(STD)) * 255).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert torch.allclose(ds.prepare(one_up.round().to(torch.uint8)), torch.ones(1, 3, 4, 4), atol=0.01)


def test_augment_switch(tmp_path):
    make_fake_cifar(tmp_path, n_per_batch=10)
    assert cifar(tmp_path, augment=False).augment is None  # the runner then leaves batches as is
    assert cifar(tmp_path, augment=True).augment is not None


def test_augment_keeps_shape_dtype_and_moves_content(tmp_path):
    make_fake_cifar(tmp_path, n_per_batch=20)
    ds = cifar(tmp_path)
    x = ds.prepare(ds.x_train[:64])
    torch.manual_seed(0)
    out = ds.augment(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    moved = (out != x).flatten(1).any(1)
    assert moved.sum() >= 60  # 1 in 162 draws is (no shift, no flip)
    torch.manual_seed(0)
    assert torch.equal(ds.augment(x), out)  # the global RNG drives it
    # every output is a window of the input padded with the normalised black pixel, maybe flipped
    black = torch.tensor([-m / s for m, s in zip(MEAN, STD, strict=True)]).view(3, 1, 1)
    for i in range(8):
        padded = black.expand(3, 40, 40).clone()
        padded[:, 4:36, 4:36] = x[i]
        windows = [padded[:, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
        windows += [w.flip(-1) for w in windows]
        assert any(torch.equal(out[i], w) for w in windows)


def test_flip_alone_mirrors_about_half():
    x = torch.randn(400, 3, 8, 8)
    torch.manual_seed(1)
    out = RandomCropFlip(padding=0)(x)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 150 < int(mirrored.sum()) < 250


def test_crop_shift_distribution():
    # a single bright pixel in the middle lands on every offset in -4..4 along each axis
    x = torch.zeros(2000, 1, 16, 16)
    x[:, 0, 8, 8] = 1
    torch.manual_seed(2)
    out = RandomCropFlip(padding=4)(x)
    where = out[:, 0].flatten(1).argmax(1)
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(2000))  # never cropped away
    rows = where // 16
    assert set(rows.tolist()) == set(range(4, 13))
