from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from ml.data import difference_hash, grouped_split, load_dataset, near_duplicate_groups, scan_folder
from ml.preprocessing import PreprocessConfig, preprocess_bytes
from tests.images import brain_like, encode
from tests.ml.test_train_and_cli import trained  # noqa: F401  (module-scoped fixture)


def test_reads_class_folders_by_data_set_or_label_names(tmp_path: Path) -> None:
    for folder in ("glioma_tumor", "pituitary", "notes"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.PNG").write_bytes(encode(brain_like(16)))
    (tmp_path / "glioma_tumor" / "readme.txt").write_text("not an image")
    labels = Counter(example.label for example in scan_folder(tmp_path))
    assert labels == {"glioma": 1, "pituitary": 1}


def test_a_folder_without_class_folders_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no images in class folders"):
        scan_folder(tmp_path)


def test_near_duplicates_share_a_group_and_distinct_slices_do_not() -> None:
    # Blurred: the synthetic noise would otherwise decide half the hash's bits.
    original = brain_like(128, seed=1).filter(ImageFilter.GaussianBlur(3))
    recompressed = encode(original.convert("RGB").resize((100, 100)), "JPEG")
    other = brain_like(128, seed=2).filter(ImageFilter.GaussianBlur(3)).rotate(90)
    hashes = np.stack([difference_hash(d) for d in (encode(original), recompressed, encode(other))])
    groups = near_duplicate_groups(hashes)
    assert groups[0] == groups[1] != groups[2]


def stratified_case() -> tuple[list[int], list[int]]:
    labels = [0] * 40 + [1] * 40 + [2] * 20 + [3] * 40
    groups = [i // 2 for i in range(len(labels))]  # pairs of near-duplicates
    return labels, groups


def test_the_split_is_stratified_reproducible_and_keeps_groups_whole() -> None:
    labels, groups = stratified_case()
    train, validation = grouped_split(labels, groups, 0.25, seed=7)
    again = grouped_split(labels, groups, 0.25, seed=7)
    assert np.array_equal(train, again[0]) and np.array_equal(validation, again[1])
    assert not {groups[i] for i in train} & {groups[i] for i in validation}
    assert sorted([*train, *validation]) == list(range(len(labels)))
    counts = Counter(labels[i] for i in validation)
    assert counts == {0: 10, 1: 10, 2: 6, 3: 10}  # a quarter of each class, in whole pairs


def test_another_seed_gives_another_split() -> None:
    labels, groups = stratified_case()
    assert not np.array_equal(grouped_split(labels, groups, 0.25, 1)[1],
                              grouped_split(labels, groups, 0.25, 2)[1])  # fmt: skip


def test_training_arrays_equal_what_inference_computes(class_folders: Path) -> None:
    config = PreprocessConfig(input_size=(48, 48), channels=1, head_crop=True)
    dataset = load_dataset(class_folders, config, cache_dir=None, progress=lambda _: None)
    for i, example in enumerate(dataset.examples):
        served = preprocess_bytes(example.path.read_bytes(), config)
        assert np.array_equal(dataset.images[i], served)


def test_the_cache_returns_the_same_arrays(class_folders: Path, tmp_path: Path) -> None:
    config = PreprocessConfig(input_size=(32, 32))
    first = load_dataset(class_folders, config, tmp_path / "cache", progress=lambda _: None)
    second = load_dataset(class_folders, config, tmp_path / "cache", progress=lambda _: None)
    assert np.array_equal(first.images, second.images) and first.fingerprint == second.fingerprint
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_a_changed_file_changes_the_fingerprint(class_folders: Path) -> None:
    config = PreprocessConfig(input_size=(32, 32))
    before = load_dataset(class_folders, config, None, progress=lambda _: None).fingerprint
    Image.new("L", (20, 20), 7).save(class_folders / "no_tumor" / "0.jpg")
    assert load_dataset(class_folders, config, None, progress=lambda _: None).fingerprint != before


def test_held_out_files_are_the_split_without_preprocessing(
    trained: Path,  # noqa: F811
) -> None:
    import json

    from ml.registry import METADATA_FILE, ModelRegistry
    from ml.sources import held_out_files, held_out_part

    model = ModelRegistry(trained / "models").active_path()
    metadata = json.loads((model / METADATA_FILE).read_text())
    config = PreprocessConfig.from_metadata(metadata["preprocessing"])
    dataset = load_dataset(trained / "data", config)
    for part in ("validation", "calibration"):
        indices = held_out_part(dataset, metadata, part)
        assert indices is not None and len(indices)
        expected = [dataset.examples[i].path for i in indices]
        assert held_out_files(trained / "data", metadata, part) == expected
    unseen = {**metadata, "training_data": {"sources": []}}
    assert len(held_out_files(trained / "data", unseen)) == len(dataset.examples)
