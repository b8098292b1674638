from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ml.data import (
    difference_hash,
    grouped_split,
    load_arrays,
    near_duplicate_groups,
    scan_folder,
    split_dataset,
)
from ml.labels import CLASS_NAMES
from ml.preprocessing import CONFIGS, load_array
from tests.ml.images import brain_like, write_class_folders


def _labels_and_groups(groups_per_class: int = 30) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    labels, groups = [], []
    for label in range(len(CLASS_NAMES)):
        for group in range(groups_per_class):
            size = int(rng.integers(1, 4))
            labels += [label] * size
            groups += [label * 1000 + group] * size
    return np.asarray(labels), np.asarray(groups)


def test_split_never_puts_one_group_on_both_sides() -> None:
    labels, groups = _labels_and_groups()
    split = grouped_split(labels, groups, 0.2, seed=3)
    assert not set(groups[split.train]) & set(groups[split.validation])
    assert len(split.train) + len(split.validation) == len(labels)


def test_split_is_stratified_by_label() -> None:
    labels, groups = _labels_and_groups()
    split = grouped_split(labels, groups, 0.2, seed=3)
    validation = Counter(labels[split.validation].tolist())
    for label, total in Counter(labels.tolist()).items():
        assert 0.15 <= validation[label] / total <= 0.3


def test_split_is_reproducible_and_depends_on_the_seed() -> None:
    labels, groups = _labels_and_groups()
    first = grouped_split(labels, groups, 0.2, seed=5)
    again = grouped_split(labels, groups, 0.2, seed=5)
    other = grouped_split(labels, groups, 0.2, seed=6)
    assert np.array_equal(first.validation, again.validation)
    assert not np.array_equal(first.validation, other.validation)


def test_split_refuses_a_fraction_outside_zero_and_one() -> None:
    labels, groups = _labels_and_groups()
    with pytest.raises(ValueError, match="val_fraction"):
        grouped_split(labels, groups, 1.5, seed=0)


def test_near_duplicates_share_a_group_and_different_images_do_not() -> None:
    original = brain_like(128, seed=1)
    brighter = original.point(lambda value: min(255, value + 12))
    different = brain_like(128, seed=2, class_index=3).transpose(0)
    hashes = np.stack([difference_hash(image) for image in (original, brighter, different)])
    groups = near_duplicate_groups(hashes)
    assert groups[0] == groups[1]
    assert groups[0] != groups[2]


def test_scan_accepts_dataset_and_portal_folder_names(tmp_path: Path) -> None:
    public = scan_folder(write_class_folders(tmp_path / "public", per_class=2))
    portal_names = ("glioma", "meningioma", "no_tumor", "pituitary")
    portal = scan_folder(write_class_folders(tmp_path / "portal", 2, folders=portal_names))
    assert public.counts() == portal.counts() == dict.fromkeys(CLASS_NAMES, 2)


def test_scan_skips_other_folders_and_files(class_folders: Path) -> None:
    (class_folders / "notes").mkdir()
    (class_folders / "notes" / "a.png").write_bytes(b"x")
    (class_folders / "glioma_tumor" / "readme.txt").write_text("x")
    assert len(scan_folder(class_folders)) == 4 * 8


def test_split_of_a_folder_is_reproducible(class_folders: Path, tmp_path: Path) -> None:
    dataset = scan_folder(class_folders)
    first = split_dataset(dataset, 0.25, seed=0, cache_dir=tmp_path / "cache")
    cached = split_dataset(dataset, 0.25, seed=0, cache_dir=tmp_path / "cache")
    assert np.array_equal(first.validation, cached.validation)
    assert set(dataset.labels[first.validation].tolist()) == set(range(len(CLASS_NAMES)))


@pytest.mark.parametrize("architecture", ["mri_cnn", "seed_cnn"])
def test_training_arrays_equal_what_serving_computes(
    class_folders: Path, tmp_path: Path, architecture: str
) -> None:
    config = CONFIGS[architecture]
    dataset = scan_folder(class_folders)
    arrays = load_arrays(dataset, config, cache_dir=tmp_path / "cache")
    reloaded = load_arrays(dataset, config, cache_dir=tmp_path / "cache")  # from the cache
    for index, relative in enumerate(dataset.paths):
        served = load_array((dataset.root / relative).read_bytes(), config)
        np.testing.assert_allclose(arrays[index], served, atol=1e-6)
        np.testing.assert_allclose(reloaded[index], served, atol=1e-6)
