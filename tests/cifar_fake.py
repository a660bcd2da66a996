"""Test helpers: a tiny CIFAR-10 in the official python format, and a local file server.

    fake = make_fake_cifar(tmp_path, n_per_batch=20, n_test=30, tarball=True)
    build_dataset("cifar10", model_modality="image", root=str(tmp_path), md5=fake.md5)

The files are made by the tests, never committed. The pickles follow the official layout:
dicts with ``b"batch_label"``, ``b"labels"`` (a list of ints), ``b"data"`` (uint8 (N, 3072):
the red plane row-major, then green, then blue) and ``b"filenames"``; ``batches.meta`` holds
``b"label_names"``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
LABEL_NAMES = [
    b"airplane",
    b"automobile",
    b"bird",
    b"cat",
    b"deer",
    b"dog",
    b"frog",
    b"horse",
    b"ship",
    b"truck",
]


@dataclass
class FakeCifar:
    root: Path
    folder: Path | None  # the extracted folder, when written
    archive: Path | None  # the tarball, when written
    md5: str | None  # the tarball's MD5 (pass it as data.md5)
    train_rows: list[np.ndarray]  # b"data" of data_batch_1..5 as written: uint8 (n_i, 3072)
    train_labels: list[np.ndarray]
    test_rows: np.ndarray  # uint8 (n_test, 3072)
    test_labels: np.ndarray


def _batch(rows: np.ndarray, labels: np.ndarray, name: str) -> bytes:
    return pickle.dumps(
        {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in labels],
            b"data": rows,
            b"filenames": [f"img_{i}.png".encode() for i in range(len(rows))],
        },
        protocol=2,
    )


def _balanced(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % 10)


def fake_cifar_files(
    n_per_batch: int | Sequence[int] = 20, n_test: int = 20, seed: int = 0
) -> tuple[dict[str, bytes], list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """The files' bytes by name (``data_batch_1..5``, ``test_batch``, ``batches.meta``), plus
    what they hold. ``n_per_batch``: one count for all five batches, or five counts."""
    sizes = [n_per_batch] * 5 if isinstance(n_per_batch, int) else list(n_per_batch)
    assert len(sizes) == 5, "five training batches"
    rng = np.random.default_rng(seed)
    files: dict[str, bytes] = {}
    rows, labels = [], []
    for i, n in enumerate(sizes, start=1):
        rows.append(rng.integers(0, 256, (n, 3072), dtype=np.uint8))
        labels.append(_balanced(rng, n))
        files[f"data_batch_{i}"] = _batch(rows[-1], labels[-1], f"training batch {i} of 5")
    test_rows = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    test_labels = _balanced(rng, n_test)
    files["test_batch"] = _batch(test_rows, test_labels, "testing batch 1 of 1")
    files["batches.meta"] = pickle.dumps(
        {b"num_cases_per_batch": max(sizes), b"label_names": LABEL_NAMES, b"num_vis": 3072},
        protocol=2,
    )
    return files, rows, labels, test_rows, test_labels


def write_tarball(path: Path, files: dict[str, bytes], folder: str = FOLDER) -> str:
    """Write ``files`` as ``<folder>/<name>`` into a .tar.gz at ``path``; return its MD5."""
    with tarfile.open(path, "w:gz") as tar:
        dir_info = tarfile.TarInfo(folder)
        dir_info.type, dir_info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(dir_info)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_fake_cifar(
    root: str | Path,
    n_per_batch: int | Sequence[int] = 20,
    *,
    n_test: int = 20,
    seed: int = 0,
    folder: bool = True,
    tarball: bool = False,
) -> FakeCifar:
    """Write a fake CIFAR-10 under ``root``: the extracted ``cifar-10-batches-py/`` (``folder``)
    and/or ``cifar-10-python.tar.gz`` (``tarball``). Labels are balanced over the 10 classes
    within each batch (exactly when a batch size is a multiple of 10)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    files, rows, labels, test_rows, test_labels = fake_cifar_files(n_per_batch, n_test, seed)
    out = FakeCifar(root, None, None, None, rows, labels, test_rows, test_labels)
    if folder:
        out.folder = root / FOLDER
        out.folder.mkdir(exist_ok=True)
        for name, data in files.items():
            (out.folder / name).write_bytes(data)
    if tarball:
        out.archive = root / ARCHIVE
        out.md5 = write_tarball(out.archive, files)
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    cut_after: int | None = None  # send only this many bytes of a file, then hang up

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def copyfile(self, source, outputfile) -> None:
        if self.cut_after is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(self.cut_after))
        outputfile.flush()
        self.close_connection = True


@contextlib.contextmanager
def serve_directory(directory: str | Path, cut_after: int | None = None) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port) from a daemon thread; yields
    the base URL (``http://127.0.0.1:PORT``) and shuts the server down on exit.
    ``cut_after``: announce the full length but send only that many bytes (a broken transfer).
    """

    def handler(*args, **kwargs):
        h = type("Handler", (_QuietHandler,), {"cut_after": cut_after})
        return h(*args, directory=str(directory), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused at once)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{ARCHIVE}"
