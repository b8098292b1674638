from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from ml.cli import main
from ml.labels import CLASS_NAMES
from tests.ml.images import brain_like, encode


def test_predict_prints_json_lines_and_fails_on_a_non_image(
    tiny_artefact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "scan.png"
    good.write_bytes(encode(brain_like(64)))
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    sixteen = tmp_path / "deep.png"
    _deep().save(sixteen)
    code = main(["predict", "--model", str(tiny_artefact), str(good), str(bad), str(sixteen)])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert [line["path"] for line in lines] == [str(good), str(sixteen)]
    assert all(line["label"] in CLASS_NAMES for line in lines)
    assert lines[0]["model_version"] == "tiny-a"
    assert f"{bad}: not an image" in err


def _deep() -> Image.Image:
    import numpy as np

    return Image.fromarray((np.asarray(brain_like(40), dtype=np.uint16) * 200).astype(np.uint16))


def test_predict_without_model_uses_the_active_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ml.testing import make_tiny_registry

    make_tiny_registry(tmp_path / "models", ("first", "second"))
    monkeypatch.setenv("MODEL_REGISTRY_DIR", str(tmp_path / "models"))
    image = tmp_path / "a.jpg"
    image.write_bytes(encode(brain_like(50), "JPEG"))
    assert main(["predict", str(image)]) == 0
    assert json.loads(capsys.readouterr().out)["model_version"] == "second"


def test_registry_commands_list_promote_and_roll_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for version in ("v1", "v2"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "model.keras").write_bytes(b"x")
    root = ["registry", "--root", str(tmp_path)]
    assert main([*root, "promote", "v1"]) == 0
    assert main([*root, "promote", "v2"]) == 0
    assert main([*root, "rollback"]) == 0
    assert main([*root, "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith("* v1")
    assert out[-1].startswith("  v2")
    assert main([*root, "rollback"]) == 1
    assert "no previous" in capsys.readouterr().err


def test_unknown_version_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["registry", "--root", str(tmp_path), "promote", "nope"]) == 1
    assert "not found" in capsys.readouterr().err
