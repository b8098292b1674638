"""Read a folder of class sub-folders, split it honestly, and feed it to training.

The training folder holds near-duplicate slices of the same patients, so a
random split puts copies of validation images in training and flatters the
figures. Images are grouped by a perceptual hash and whole groups are split,
stratified by class.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ml.labels import CLASS_NAMES, FOLDER_TO_LABEL
from ml.preprocessing import PreprocessConfig, preprocess_bytes

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
HASH_SIDE = 16
# Of 256 bits. Measured on the training folder: 186 images have an exact twin, ~60
# more a twin within 12 bits, then the distances jump to 15-60 for distinct slices.
NEAR_DUPLICATE_BITS = 12


@dataclass(frozen=True)
class Example:
    path: Path
    label: str

    @property
    def class_index(self) -> int:
        return CLASS_NAMES.index(self.label)


def scan_folder(root: Path) -> list[Example]:
    """Return every image under `root`'s class folders, in a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    examples = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = FOLDER_TO_LABEL.get(folder.name)
        if label is None:
            continue
        examples += [
            Example(path, label)
            for path in sorted(folder.rglob("*"))
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
    if not examples:
        known = ", ".join(sorted(FOLDER_TO_LABEL))
        raise FileNotFoundError(f"no images in class folders under {root} (expected: {known})")
    return examples


def fingerprint(examples: Sequence[Example], root: Path) -> str:
    """Return a sha256 over every file's relative path, label and content."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(f"{example.path.relative_to(root)}:{example.label}:".encode())
        digest.update(hashlib.sha256(example.path.read_bytes()).digest())
    return digest.hexdigest()


def difference_hash(data: bytes) -> np.ndarray:
    """Return a 256-bit dHash (32 packed bytes): which of each pair of neighbours is brighter."""
    image = Image.open(io.BytesIO(data))
    image.draft("L", (64, 64))
    size = (HASH_SIDE + 1, HASH_SIDE)
    small = np.asarray(image.convert("L").resize(size, Image.Resampling.BILINEAR), np.int16)
    return np.packbits(small[:, 1:] > small[:, :-1])


def near_duplicate_groups(hashes: np.ndarray, max_bits: int = NEAR_DUPLICATE_BITS) -> list[int]:
    """Return a group id per packed hash; hashes within `max_bits` (transitively) share one."""
    hashes = np.asarray(hashes, dtype=np.uint8)
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(hashes)):
        distances = np.unpackbits(hashes[i + 1 :] ^ hashes[i], axis=1).sum(axis=1)
        for j in np.flatnonzero(distances <= max_bits) + i + 1:
            parent[find(int(j))] = find(i)
    return [find(i) for i in range(len(hashes))]


def grouped_split(
    labels: Sequence[int], groups: Sequence[int], val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return (train, validation) index arrays; no group straddles the two.

    Per class (a group's class is its most common), groups are shuffled with
    `seed` and moved to validation until it holds `val_fraction` of the class.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    members: dict[int, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    by_class: dict[int, list[int]] = defaultdict(list)
    for group, indices in sorted(members.items()):
        by_class[int(np.bincount([labels[i] for i in indices]).argmax())].append(group)
    rng = np.random.default_rng(seed)
    validation: list[int] = []
    for class_index in sorted(by_class):
        class_groups = by_class[class_index]
        rng.shuffle(class_groups)
        target = val_fraction * sum(len(members[g]) for g in class_groups)
        taken = 0
        for group in class_groups:
            if taken >= target:
                break
            validation += members[group]
            taken += len(members[group])
    val_set = set(validation)
    train = np.array([i for i in range(len(labels)) if i not in val_set], dtype=np.int64)
    return train, np.array(sorted(val_set), dtype=np.int64)


@dataclass
class Dataset:
    """Preprocessed images in memory, with the split that training used."""

    examples: list[Example]
    images: np.ndarray  # (n, height, width, channels) float32, values 0..255
    labels: np.ndarray  # (n,) int64 class indices
    groups: np.ndarray  # (n,) near-duplicate group ids
    fingerprint: str

    def split(self, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return grouped_split(self.labels.tolist(), self.groups.tolist(), val_fraction, seed)


def load_dataset(
    root: Path,
    config: PreprocessConfig,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] = print,
) -> Dataset:
    """Preprocess every image once (in threads), caching the arrays under `cache_dir`."""
    root = Path(root)
    examples = scan_folder(root)
    data_fingerprint = fingerprint(examples, root)
    cache = _cache_path(cache_dir, data_fingerprint, config)
    if cache is not None and cache.exists():
        progress(f"using preprocessed cache {cache}")
        stored = np.load(cache)
        return Dataset(examples, stored["images"], stored["labels"], stored["groups"],
                       data_fingerprint)  # fmt: skip
    progress(f"preprocessing {len(examples)} images from {root}")
    with ThreadPoolExecutor() as pool:
        contents = list(pool.map(lambda e: e.path.read_bytes(), examples))
        images = np.stack(list(pool.map(lambda d: preprocess_bytes(d, config), contents)))
        labels, groups = _labels_and_groups(examples, contents, pool)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=images, labels=labels, groups=groups)
    return Dataset(examples, images, labels, groups, data_fingerprint)


def split_only(root: Path) -> Dataset:
    """The folder's examples, labels and near-duplicate groups, without its images (`images`
    is empty): all a split needs, in seconds instead of a preprocessing run."""
    root = Path(root)
    examples = scan_folder(root)
    with ThreadPoolExecutor() as pool:
        contents = list(pool.map(lambda e: e.path.read_bytes(), examples))
        labels, groups = _labels_and_groups(examples, contents, pool)
    images = np.zeros((0, 0, 0, 0), np.float32)
    return Dataset(examples, images, labels, groups, fingerprint(examples, root))


def _labels_and_groups(
    examples: Sequence[Example], contents: Sequence[bytes], pool: ThreadPoolExecutor
) -> tuple[np.ndarray, np.ndarray]:
    hashes = np.stack(list(pool.map(difference_hash, contents)))
    labels = np.array([e.class_index for e in examples], dtype=np.int64)
    return labels, np.array(near_duplicate_groups(hashes), dtype=np.int64)


def _cache_path(
    cache_dir: Path | None, data_fingerprint: str, config: PreprocessConfig
) -> Path | None:
    if cache_dir is None:
        return None
    key = hashlib.sha256(
        (data_fingerprint + json.dumps(config.to_metadata(), sort_keys=True)).encode()
    ).hexdigest()[:16]
    return Path(cache_dir) / f"dataset-{key}.npz"
