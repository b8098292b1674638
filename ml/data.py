"""Data: scan class folders, group near-duplicates, split by group, cache preprocessed arrays.

The split is by groups of near-duplicate images (perceptual hash + union-find), so
slices of the same scan never sit on both sides and validation stays honest. The
whole folder is decoded and preprocessed once into a numpy array (cached under
`artifacts/cache/`, never committed); tf.data then only shuffles and augments.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ml.artefact import fingerprint_files
from ml.labels import CLASS_NAMES, label_for_folder
from ml.preprocessing import PreprocessConfig, decode_image, load_array, to_standard_mode

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
HASH_SIZE = 16  # 16x16 difference hash: 256 bits, fine enough not to merge different patients
DEFAULT_HASH_DISTANCE = 20  # bits of 256; at 32 unrelated slices start to chain together
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[1] / "artifacts" / "cache"


@dataclass(frozen=True)
class Dataset:
    root: Path
    paths: tuple[str, ...]  # relative to root, sorted
    labels: np.ndarray  # (N,) int64 indices into CLASS_NAMES

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        counted = Counter(int(label) for label in self.labels)
        return {name: counted.get(index, 0) for index, name in enumerate(CLASS_NAMES)}

    def fingerprint(self) -> str:
        return fingerprint_files(self.root, list(self.paths))


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # indices into the Dataset
    validation: np.ndarray
    groups: np.ndarray  # (N,) group id of each image

    def describe(self, dataset: Dataset, seed: int, val_fraction: float) -> dict[str, object]:
        """Return what metadata.json records so the split can be rebuilt and checked."""
        val_paths = sorted(dataset.paths[i] for i in self.validation)
        return {
            "method": f"dhash{HASH_SIZE} hamming<={DEFAULT_HASH_DISTANCE} union-find groups, "
            "stratified by label",
            "seed": seed,
            "val_fraction": val_fraction,
            "groups": len(np.unique(self.groups)),
            "train_images": len(self.train),
            "validation_images": len(self.validation),
            "validation_paths_sha256": hashlib.sha256("\n".join(val_paths).encode()).hexdigest(),
        }


def scan_folder(root: Path | str) -> Dataset:
    """Return every image under `root/<class folder>/`; folder names map via FOLDER_TO_LABEL."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data folder not found: {root}")
    paths: list[str] = []
    labels: list[int] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = label_for_folder(folder.name)
        if label is None:
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(path.relative_to(root).as_posix())
                labels.append(CLASS_NAMES.index(label))
    if not paths:
        raise ValueError(f"no images in class folders under {root}")
    return Dataset(root, tuple(paths), np.asarray(labels, dtype=np.int64))


def difference_hash(image: Image.Image, size: int = HASH_SIZE) -> np.ndarray:
    """Return the dHash of `image` as (size*size,) bool: is each pixel brighter than its right?"""
    gray = to_standard_mode(image, "L").resize((size + 1, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(gray, dtype=np.int16)
    return (pixels[:, 1:] > pixels[:, :-1]).reshape(-1)


def near_duplicate_groups(
    hashes: np.ndarray, max_distance: int = DEFAULT_HASH_DISTANCE
) -> np.ndarray:
    """Return a group id per image: union-find over pairs whose hashes differ in few bits."""
    parents = np.arange(len(hashes))
    packed = hashes.astype(np.float32)
    for start in range(0, len(hashes), 512):
        block = packed[start : start + 512]
        # Hamming distance via dot products: d = |a| + |b| - 2 a.b for 0/1 vectors.
        distance = block.sum(1)[:, None] + packed.sum(1)[None, :] - 2 * block @ packed.T
        for row, col in zip(*np.nonzero(distance <= max_distance), strict=True):
            if start + row < col:
                _union(parents, start + row, int(col))
    return np.asarray([_find(parents, i) for i in range(len(hashes))])


def _find(parents: np.ndarray, item: int) -> int:
    while parents[item] != item:
        parents[item] = parents[parents[item]]
        item = int(parents[item])
    return item


def _union(parents: np.ndarray, first: int, second: int) -> None:
    root_first, root_second = _find(parents, first), _find(parents, second)
    if root_first != root_second:
        parents[max(root_first, root_second)] = min(root_first, root_second)


def grouped_split(labels: np.ndarray, groups: np.ndarray, val_fraction: float, seed: int) -> Split:
    """Return a seeded split of whole groups, stratified by each group's majority label."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, not {val_fraction}")
    members: dict[int, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[int(group)].append(index)
    by_label: dict[int, list[int]] = defaultdict(list)
    for group in sorted(members):
        majority = Counter(int(labels[i]) for i in members[group]).most_common(1)[0][0]
        by_label[majority].append(group)
    rng = np.random.default_rng(seed)
    validation: list[int] = []
    for label in sorted(by_label):
        validation.extend(_take_fraction(by_label[label], members, val_fraction, rng))
    is_val = np.zeros(len(labels), dtype=bool)
    is_val[validation] = True
    return Split(np.flatnonzero(~is_val), np.flatnonzero(is_val), np.asarray(groups))


def _take_fraction(
    groups: list[int], members: dict[int, list[int]], fraction: float, rng: np.random.Generator
) -> list[int]:
    target = fraction * sum(len(members[g]) for g in groups)
    taken: list[int] = []
    for position in rng.permutation(len(groups)):
        if len(taken) >= target:
            break
        taken.extend(members[groups[int(position)]])
    return taken


def split_dataset(
    dataset: Dataset, val_fraction: float, seed: int, cache_dir: Path | None = None
) -> Split:
    """Return the grouped split of `dataset` (hashes are cached by data fingerprint)."""
    hashes = _cached(cache_dir, f"hashes-{dataset.fingerprint()[:16]}", lambda: _hashes(dataset))
    groups = near_duplicate_groups(hashes)
    return grouped_split(dataset.labels, groups, val_fraction, seed)


def _hashes(dataset: Dataset) -> np.ndarray:
    def one(relative: str) -> np.ndarray:
        data = (dataset.root / relative).read_bytes()
        return difference_hash(decode_image(data, draft_size=(64, 64)))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return np.stack(list(pool.map(one, dataset.paths)))


def load_arrays(
    dataset: Dataset, config: PreprocessConfig, cache_dir: Path | None = None
) -> np.ndarray:
    """Return every image preprocessed exactly as serving does: (N, H, W, C) float32."""
    key = hashlib.sha256(
        (dataset.fingerprint() + json.dumps(config.to_metadata(), sort_keys=True)).encode()
    ).hexdigest()[:16]
    name = f"arrays-{config.name}-{key}"
    return _cached(cache_dir, name, lambda: _preprocess_all(dataset, config))


def _preprocess_all(dataset: Dataset, config: PreprocessConfig) -> np.ndarray:
    def one(relative: str) -> np.ndarray:
        return load_array((dataset.root / relative).read_bytes(), config)

    # Pillow releases the GIL while decoding, so two threads use both cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        return np.stack(list(pool.map(one, dataset.paths)))


def _cached(cache_dir: Path | None, name: str, compute: object) -> np.ndarray:
    if cache_dir is None:
        return compute()  # type: ignore[operator,no-any-return]
    path = Path(cache_dir) / f"{name}.npy"
    if path.is_file():
        return np.load(path)
    array: np.ndarray = compute()  # type: ignore[operator]
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp.npy")
    np.save(temp, array)
    temp.replace(path)
    return array
