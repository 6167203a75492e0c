import os
import secrets
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_configure(config):
    """Under pytest-xdist (`-n N`) the workers share the cores: each runs torch on its share of
    them. Left at torch's default, N workers each start a thread per core and the threads of
    the tests' small tensors spin against each other; the fast tier took as long on 2 workers
    as on one. Before torch is imported: OMP_NUM_THREADS sets its intra-op pool, here and in
    the subprocesses a test starts."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        # Ray 2.60 starts a local cluster with token authentication and, where no token is
        # found, writes a new one to ~/.ray/auth_token: two workers starting their first Ray at
        # once on a fresh machine could each write their own under the other's cluster. One
        # token for the whole run, in the environment every worker and subprocess inherits;
        # nothing written into the home directory.
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        os.environ["OMP_NUM_THREADS"] = str(max(1, cores // int(workers)))
SCUT5500_LABELS = FIXTURES / "scut-fbp5500-labels" / "train_test_files"
SCUT_FBP_WORKBOOK = FIXTURES / "scut-fbp-labels" / "SCUT-FBP.xlsx"


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """Tests never write into the user's cache."""
    os.environ["FBP_CACHE_DIR"] = str(tmp_path_factory.mktemp("fbp-cache"))


def write_stand_in_images(folder: Path, names, side: int = 8) -> None:
    """Tiny real JPEGs, each a flat colour derived from its index, for loader and cache tests."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (side, side), (i % 256, (i // 256) % 256, 128)).save(folder / name, quality=95)


def write_broken_png(path: Path) -> Path:
    """A PNG whose second image-data chunk has a type no PNG has: PIL raises SyntaxError."""
    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)  # 270 kB: several IDAT chunks
    Image.fromarray(noise).save(path)
    data = bytearray(path.read_bytes())
    second = data.find(b"IDAT", data.find(b"IDAT") + 4)
    data[second:second + 4] = b"\x00\x01\x02\x03"
    path.write_bytes(bytes(data))
    return path


REVIEW_Z = (-2.0, -0.5, 0.0, 0.7, 1.2)
"""HotOrNot-like z-scores from a review: the paper's 1..5 rule ceil(s - 1/2) puts all five in
class 0; HotOrNot's own three intervals (edges -1, 1) give classes 0, 1, 1, 1, 2."""


def review_scores(copies: int = 4) -> list[float]:
    """Each of REVIEW_Z `copies` times in a row: every training split of `write_hotornot` holds
    each score at least copies - 1 times."""
    return [z for z in REVIEW_Z for _ in range(copies)]


def write_hotornot(root: Path, scores) -> list[str]:
    """A HotOrNot-shaped root: one image per score, released as .jpg and listed as .bmp in five
    splits; split k tests the images i with i % 5 == k - 1 and trains on the others."""
    names = [f"face{i:03d}" for i in range(len(scores))]
    write_stand_in_images(root, [f"{name}.jpg" for name in names])
    for k in range(5):
        lines = [f"{name}.bmp,{score:.3f},{'test' if i % 5 == k else 'train'}" for i, (name, score) in enumerate(zip(names, scores))]
        (root / f"eccv2010_split{k + 1}.csv").write_text("\n".join(lines) + "\n")
    return names


@pytest.fixture(scope="session")
def scut5500_root(tmp_path_factory) -> Path:
    """The real SCUT-FBP5500 label files beside 5500 generated stand-in images (read-only use)."""
    root = tmp_path_factory.mktemp("scut-fbp5500")
    shutil.copytree(SCUT5500_LABELS, root / "train_test_files")
    names = [line.split()[0] for line in (SCUT5500_LABELS / "All_labels.txt").read_text().splitlines() if line.strip()]
    write_stand_in_images(root / "Images", names)
    return root


@pytest.fixture
def scut5500_copy(scut5500_root, tmp_path) -> Path:
    """A private copy that a test may damage (images are hard links: cheap)."""
    root = tmp_path / "scut-fbp5500"
    shutil.copytree(scut5500_root, root, copy_function=os.link)
    return root


class OfflineHub:
    """An empty Hugging Face hub cache and torch.hub directory, with the network switched off
    (HF_HUB_OFFLINE=1); `put` lays a file out as huggingface_hub caches a download."""

    def __init__(self, root: Path):
        self.cache = root / "hub"

    def put(self, repo_id: str, filename: str, tensors: dict) -> Path:
        from safetensors.torch import save_file

        repo = self.cache / ("models--" + repo_id.replace("/", "--"))
        commit = "0" * 40
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        path = repo / "snapshots" / commit / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
        return path


@pytest.fixture
def offline_hub(monkeypatch, tmp_path) -> OfflineHub:
    """What the cluster nodes are: no network, and timm's weights only where the test puts them."""
    root = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(root))
    monkeypatch.setenv("HF_HUB_CACHE", str(root / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return OfflineHub(root)
