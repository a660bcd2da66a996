"""``data=cifar10``: the official python version of CIFAR-10, checked, cached, held as uint8.

Where the files live (``data.root``, default :func:`default_root`)::

    <root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}   # used when complete
    <root>/cifar-10-python.tar.gz    # else: MD5-checked, then extracted next to it, atomically

With neither there and ``data.download`` true, the archive is downloaded to a temporary name in
``<root>``, checked, then renamed into place. Every step that writes goes through a temporary
name and a rename, so a killed run or a parallel sweep never sees half a folder or half a file.

In memory the images are uint8 (N, 3, 32, 32) (150 MB for the training split); ``prepare``
turns a batch into per-channel standardised float32 on the fly and ``augment`` is the usual
random crop (4-pixel padding) plus horizontal flip, vectorised on the batch.

``data.train_size`` / ``data.test_size`` take class-stratified subsets (:mod:`normbench.data.subsets`).
"""

from __future__ import annotations

import codecs
import hashlib
import http.client
import logging
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import torch

from normbench.data.base import Dataset
from normbench.data.registry import register_dataset
from normbench.data.subsets import check_seed, check_size, take_subsets
from normbench.errors import ConfigError, one_line

log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
NEEDED = (*TRAIN_FILES, TEST_FILE)
ROOT_ENV = "NORMBENCH_DATA"  # overrides the default data.root

NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)
# The standard CIFAR-10 training-set statistics (pixels scaled to [0, 1]).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def default_root() -> Path:
    """``$NORMBENCH_DATA`` when set, else ``~/.cache/normbench``."""
    return Path(os.environ.get(ROOT_ENV) or Path.home() / ".cache" / "normbench").expanduser()


# ----------------------------------------------------------------------------- files on disk


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in NEEDED)


def _safe_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """Regular files and folders under ``cifar-10-batches-py/`` only: no absolute paths, no
    ``..``, no links or devices (a checksum override must not let an archive write elsewhere)."""
    members = tar.getmembers()
    for m in members:
        parts = Path(m.name).parts
        if (
            not (m.isfile() or m.isdir())
            or Path(m.name).is_absolute()
            or ".." in parts
            or not parts
            or parts[0] != FOLDER
        ):
            raise ConfigError(
                "data.root",
                archive.parent,
                f"{archive.name} holds an unsafe or unexpected member {m.name!r}; "
                f"nothing was extracted (expected only {FOLDER}/...)",
            )
    return members


def extract(archive: Path, md5: str) -> Path:
    """Check ``archive`` against ``md5``, then extract its ``cifar-10-batches-py/`` next to it.

    Extraction goes into a temporary folder in the same root and is renamed into place, so the
    final folder is either absent or complete.
    """
    root = archive.parent
    actual = file_md5(archive)
    if actual != md5:
        raise ConfigError(
            "data.root",
            root,
            f"{archive.name} there has MD5 {actual}, not the expected {md5} (a truncated or "
            "different file); delete it to download it again, or put the official archive there",
        )
    final = root / FOLDER
    tmp = Path(tempfile.mkdtemp(prefix=f".{FOLDER}.", suffix=".part", dir=root))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = _safe_members(tar, archive)
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: a second line of defence
                    tar.extractall(tmp, members=members, filter="data")
                else:
                    tar.extractall(tmp, members=members)
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ConfigError(
                "data.root", root, f"{archive.name} cannot be extracted ({one_line(err)})"
            ) from err
        if not _is_complete(tmp / FOLDER):
            missing = [n for n in NEEDED if not (tmp / FOLDER / n).is_file()]
            raise ConfigError(
                "data.root",
                root,
                f"{archive.name} lacks {FOLDER}/{', '.join(missing)}; it is not CIFAR-10 (python)",
            )
        try:
            os.rename(tmp / FOLDER, final)
        except OSError:
            if not _is_complete(final):  # else a parallel run got there first: use its folder
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def download(url: str, dest: Path, md5: str) -> None:
    """Download ``url`` to a temporary name next to ``dest``, check ``md5``, rename to ``dest``.

    ``dest`` never holds a partial or unchecked file.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    # Content-Length, or None; a file:// response has no such attribute
                    expected, received = getattr(response, "length", None), 0
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        digest.update(chunk)
                        out.write(chunk)
                        received += len(chunk)
                    if expected is not None and received < expected:  # read() hides a cut-off
                        raise ConnectionError(f"cut off after {received} of {expected} bytes")
            # URLError, HTTPError, timeouts, refused or reset connections, cut-off transfers
            except (OSError, http.client.HTTPException) as err:
                raise ConfigError(
                    "data.root",
                    dest.parent,
                    f"CIFAR-10 is not there and downloading {url} failed ({one_line(err)}); "
                    f"put {dest.name} from that address (or the extracted {FOLDER}/) into "
                    f"{dest.parent}, or point data.root at a folder that holds it",
                ) from err
        if digest.hexdigest() != md5:
            raise ConfigError(
                "data.url",
                url,
                f"the downloaded file has MD5 {digest.hexdigest()}, not the expected {md5}; it was "
                "discarded (an interrupted transfer or a proxy page?); try again, or download it "
                f"yourself into {dest.parent}",
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_cifar10(
    root: str | os.PathLike | None = None,
    *,
    download_missing: bool = True,
    url: str | None = None,
    md5: str | None = None,
) -> Path:
    """Return ``<root>/cifar-10-batches-py``, extracting or downloading it when needed.

    Raises :class:`ConfigError` (one line) when it cannot be had.
    """
    root = Path(root).expanduser() if root is not None else default_root()
    url, md5 = url or CIFAR10_URL, (md5 or CIFAR10_MD5).lower()
    folder, archive = root / FOLDER, root / ARCHIVE
    if folder.is_dir():
        if _is_complete(folder):
            return folder
        missing = [n for n in NEEDED if not (folder / n).is_file()]
        raise ConfigError(
            "data.root",
            root,
            f"{FOLDER}/ there lacks {', '.join(missing)}; remove that folder so that it is "
            f"extracted again from {ARCHIVE}",
        )
    if not archive.is_file():
        if not download_missing:
            raise ConfigError(
                "data.root",
                root,
                f"CIFAR-10 is not there (neither {FOLDER}/ nor {ARCHIVE}); put {ARCHIVE} from "
                f"{url} there, or set data.download=true",
            )
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                "data.root", root, f"cannot create it ({one_line(err)}); choose a writable folder"
            ) from err
        log.info("downloading CIFAR-10 (163 MB) from %s to %s", url, root)
        download(url, archive, md5)
    log.info("extracting %s", archive)
    return extract(archive, md5)


# ----------------------------------------------------------------------------- reading batches


def _reconstruct_globals() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core", "numpy._core"):  # pickles name either, whichever numpy wrote them
        allowed[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    allowed[("_codecs", "encode")] = codecs.encode  # bytes in protocol-2 pickles
    return allowed


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, lists, dicts and bytes, nothing else: a CIFAR batch needs no
    more, and loading a pickle must not run arbitrary code."""

    ALLOWED = _reconstruct_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}") from None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One official batch file -> images uint8 (N, 3, 32, 32), labels int64 (N,).

    Rows of ``b"data"`` are 3072 bytes: the red plane (32 x 32, row-major), then green, then
    blue, so a plain reshape gives channels-first images.
    """
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
        data, labels = batch[b"data"], np.asarray(batch[b"labels"])
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
            raise ValueError(f"b'data' is not a uint8 matrix ({type(data).__name__})")
        if data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"b'data' rows hold {data.shape[1]} bytes, not 3072")
        if labels.shape != (len(data),):
            raise ValueError(f"{labels.shape} labels for {len(data)} images")
        if labels.dtype.kind not in "iu":  # 10**30 in the list makes an object array
            raise ValueError(f"labels are not integers 0..9 (dtype {labels.dtype}; first {labels.flat[0]!r})")
        if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            raise ValueError(f"labels outside 0..9 ({labels.min()}..{labels.max()})")
    except Exception as err:  # any way a pickle can be broken: one line, not a traceback
        raise ConfigError(
            "data.root",
            path.parent.parent,
            f"{FOLDER}/{path.name} is not a CIFAR-10 batch ({type(err).__name__}: "
            f"{one_line(err)}); remove {FOLDER}/ to extract it again",
        ) from err
    # (N, 3072) -> (N, 3, 32, 32)
    return data.reshape(-1, *IMAGE_SHAPE), labels.astype(np.int64)


def load_cifar10(folder: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``cifar-10-batches-py/`` -> x_train, y_train, x_test, y_test (uint8 images, int64 labels).
    Batches may hold any number of images."""
    train = [read_batch(folder / name) for name in TRAIN_FILES]
    x_test, y_test = read_batch(folder / TEST_FILE)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return tuple(torch.from_numpy(a) for a in (x_train, y_train, x_test, y_test))  # type: ignore


# ----------------------------------------------------------------------------- batch transforms


class _PerDevice:
    """Small constant tensors, made once per (device, dtype) rather than on every batch."""

    def __init__(self, values: tuple[float, ...]) -> None:
        self.values, self.cache = values, {}

    def get(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (device, dtype)
        if key not in self.cache:
            self.cache[key] = torch.tensor(self.values, dtype=dtype, device=device).view(1, -1, 1, 1)
        return self.cache[key]


class Normalize:
    """``prepare``: uint8 (N, C, H, W) -> float32 ``(x / 255 - mean) / std`` per channel."""

    def __init__(self, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD) -> None:
        self.scale = _PerDevice(tuple(1.0 / (255.0 * s) for s in std))
        self.shift = _PerDevice(tuple(m / s for m, s in zip(mean, std, strict=True)))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        f = x.to(torch.float32)
        return f.mul_(self.scale.get(f.device, f.dtype)).sub_(self.shift.get(f.device, f.dtype))


class RandomCropFlip:
    """``augment``: random crop of the image size from the image padded by ``padding`` on each
    side, then a horizontal flip with probability 1/2; one gather for the whole batch.

    The padding takes the value ``fill`` per channel: for prepared CIFAR batches, the normalised
    black pixel, as torchvision's ``RandomCrop(32, padding=4)`` before ``Normalize`` gives.
    Draws from torch's global RNG (on the batch's device).
    """

    def __init__(self, padding: int = 4, fill: tuple[float, ...] | None = None) -> None:
        self.padding = padding
        self.fill = _PerDevice(fill) if fill is not None else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p, dev = self.padding, x.device
        ph, pw = h + 2 * p, w + 2 * p
        if self.fill is None:
            padded = x.new_zeros(n, c, ph, pw)
        else:
            padded = self.fill.get(dev, x.dtype).expand(n, c, ph, pw).clone()
        padded[:, :, p : p + h, p : p + w] = x
        dy = torch.randint(0, 2 * p + 1, (n, 1), device=dev)
        dx = torch.randint(0, 2 * p + 1, (n, 1), device=dev)
        flip = torch.rand(n, 1, device=dev) < 0.5
        ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
        rows = dy + ar_h  # (N, H): source row of each output row
        cols = dx + torch.where(flip, ar_w.flip(0), ar_w)  # (N, W), reversed when flipped
        idx = (rows[:, :, None] * pw + cols[:, None, :]).view(n, 1, h * w)  # (N, 1, H*W)
        out = padded.view(n, c, ph * pw).gather(2, idx.expand(n, c, h * w))  # one gather
        return out.view(n, c, h, w)


# ----------------------------------------------------------------------------- the dataset


def _check_flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, value, "must be true or false")
    return value


URL_SCHEMES = ("https", "http", "ftp", "file")  # what urllib opens; file:// is a local mirror


def _check_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or urllib.parse.urlsplit(value).scheme.lower() not in URL_SCHEMES:
        raise ConfigError(
            "data.url",
            value,
            "is not a URL; use an https://, http://, ftp:// or file:// address of "
            f"{ARCHIVE}, or null for the official one",
        )
    return value


def _check_root(value: Any) -> str | os.PathLike | None:
    if isinstance(value, str) and not value.strip():  # Path("") is the current directory
        raise ConfigError("data.root", repr(value), "is empty; use a folder, or null for the default")
    return value


def _check_md5(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).lower()
    if not isinstance(value, str) or len(text) != 32 or any(ch not in "0123456789abcdef" for ch in text):
        raise ConfigError("data.md5", value, "must be 32 hex digits in quotes, or null for the official one")
    return text


@register_dataset("cifar10")
def make_cifar10(
    *,
    model_modality: str = "image",  # every model reads images (mlp flattens, rnn reads rows)
    root: str | os.PathLike | None = None,
    download: bool = True,
    url: str | None = None,
    md5: str | None = None,
    augment: bool = True,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
) -> Dataset:
    """CIFAR-10: 10 classes, uint8 (N, 3, 32, 32) in memory, 50,000 train / 10,000 test.

    ``root`` null: :func:`default_root`; ``url`` / ``md5`` null: the official ones.
    """
    download = _check_flag("data.download", download)
    augment = _check_flag("data.augment", augment)
    md5, url, root = _check_md5(md5), _check_url(url), _check_root(root)
    seed = check_seed(seed)
    for key, value in (("data.train_size", train_size), ("data.test_size", test_size)):
        check_size(key, value, None)  # the type and sign, before any download
    folder = ensure_cifar10(root, download_missing=download, url=url, md5=md5)
    x_train, y_train, x_test, y_test = take_subsets(*load_cifar10(folder), train_size, test_size, seed)
    black = tuple(-m / s for m, s in zip(MEAN, STD, strict=True))  # what a 0 pixel becomes after Normalize
    return Dataset(
        name="cifar10",
        modality="image",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=NUM_CLASSES,
        prepare=Normalize(),
        augment=RandomCropFlip(4, fill=black) if augment else None,
    )
