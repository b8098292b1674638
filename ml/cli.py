"""The `python -m ml` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ml.errors import MLError
from ml.registry import ModelRegistry, default_registry_root

if TYPE_CHECKING:
    from ml.inference import Classification


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        sys.exit(args.handler(args) or 0)
    except (MLError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model and write a versioned artefact")
    train.add_argument(
        "--data",
        type=Path,
        nargs="+",
        required=True,
        help="folders of class sub-folders, one per source; each is split on its own",
    )
    train.add_argument("--arch", default="mri_cnn", help="mri_cnn (default), seed_cnn, tiny")
    train.add_argument("--epochs", type=int, default=60)
    train.add_argument("--out", type=Path, default=None, help="registry folder (default models/)")
    train.add_argument(
        "--seed", type=int, default=1337, help="initialisation, shuffling and augmentation"
    )
    train.add_argument(
        "--split-seed", type=int, default=1337, help="the train/validation split (keep it fixed)"
    )
    train.add_argument("--val-fraction", type=float, default=0.2)
    train.add_argument(
        "--calibration-fraction",
        type=float,
        default=0.1,
        help="of what validation leaves: fits temperature, thresholds and guard (0: none)",
    )
    train.add_argument(
        "--sequence-randomisation",
        type=float,
        help="share of training images whose tissue contrast is redrawn (default: the arch's)",
    )
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument(
        "--input-size", type=int, help="side of the square model input (default: the arch's)"
    )
    train.add_argument(
        "--init-from",
        type=Path,
        help="artefact folder to start from (fine-tune); of an ensemble, --init-member's weights",
    )
    train.add_argument("--init-member", type=int, default=0, help="which ensemble member")
    train.add_argument("--learning-rate", type=float, help="peak of the cosine schedule")
    train.add_argument(
        "--distill-from",
        type=Path,
        help="artefact folder of a teacher (e.g. the ensemble) to distil into this model",
    )
    train.add_argument(
        "--distill-temperature",
        type=float,
        default=2.0,
        help="softens teacher and student probabilities in the distillation term (default 2)",
    )
    train.add_argument(
        "--distill-weight",
        type=float,
        default=0.7,
        help="share of the loss from the teacher's soft targets, the rest hard labels (0.7)",
    )
    train.add_argument(
        "--no-guard", action="store_true", help="skip training the guard (ml calibrate does it)"
    )
    train.add_argument("--promote", action="store_true", help="make it the active model")
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser("evaluate", help="figures and plots for a model on a data set")
    evaluate.add_argument("--model", type=Path, help="artefact folder (default: active model)")
    evaluate.add_argument(
        "--data",
        type=Path,
        nargs="+",
        required=True,
        help="folders, one per source: held-out part of those it was trained on, else all",
    )
    evaluate.add_argument(
        "--split",
        choices=["val", "all"],
        default="val",
        help="val: only the model's own held-out groups (default)",
    )
    evaluate.add_argument("--out", type=Path, help="where to write metrics.json and plots")
    evaluate.add_argument(
        "--no-probes", action="store_true", help="skip the sequence probes (faster)"
    )
    evaluate.set_defaults(handler=run_evaluate)

    calibrate = commands.add_parser(
        "calibrate",
        help="fit a trained model's temperature, decision thresholds and guard "
        "on its calibration part",
    )
    calibrate.add_argument("--model", type=Path, required=True, help="artefact folder")
    calibrate.add_argument(
        "--data", type=Path, nargs="+", required=True, help="the folders it was trained on"
    )
    calibrate.add_argument(
        "--target-miss-rate",
        type=float,
        default=None,
        help="share of tumours allowed to be called no_tumor without a review flag",
    )
    calibrate.add_argument("--no-guard", action="store_true", help="fit the decision rule only")
    calibrate.set_defaults(handler=run_calibrate)

    litert = commands.add_parser(
        "litert",
        help="write the LiteRT float32 conversion (model.tflite) that CPU workers serve, "
        "checked against Keras on the validation slices",
    )
    litert.add_argument("--model", type=Path, required=True, help="artefact folder")
    litert.add_argument(
        "--data", type=Path, nargs="+", required=True, help="the folders it was trained on"
    )
    litert.set_defaults(handler=run_litert)

    card = commands.add_parser("card", help="print a model's figure tables for its model card")
    card.add_argument("--model", type=Path, help="artefact folder (default: active model)")
    card.set_defaults(handler=run_card)

    predict = commands.add_parser("predict", help="classify images; one JSON line each")
    predict.add_argument("--model", type=Path, help="artefact folder (default: active model)")
    predict.add_argument("images", nargs="+", type=Path)
    predict.set_defaults(handler=run_predict)

    registry = commands.add_parser("registry", help="list, promote or roll back model versions")
    registry.add_argument("--root", type=Path, default=None)
    actions = registry.add_subparsers(required=True, metavar="ACTION")
    actions.add_parser("list").set_defaults(handler=run_registry_list)
    promote = actions.add_parser("promote")
    promote.add_argument("version")
    promote.set_defaults(handler=run_registry_promote)
    actions.add_parser("rollback").set_defaults(handler=run_registry_rollback)

    ensemble = commands.add_parser("ensemble", help="average trained models into one artefact")
    ensemble.add_argument(
        "--members",
        type=Path,
        nargs="+",
        required=True,
        help="artefact folders trained on the same data and split",
    )
    ensemble.add_argument("--data", type=Path, required=True, help="the members' training data")
    ensemble.add_argument(
        "--out", type=Path, default=None, help="registry folder (default models/)"
    )
    ensemble.add_argument("--no-flip", action="store_true", help="no test-time mirror images")
    ensemble.add_argument("--promote", action="store_true", help="make it the active model")
    ensemble.set_defaults(handler=run_ensemble)

    cascade = commands.add_parser(
        "cascade", help="serve one member of an ensemble alone where it is sure (ml/cascade.py)"
    )
    cascade.add_argument("--ensemble", type=Path, required=True, help="ensemble artefact folder")
    cascade.add_argument(
        "--data", type=Path, nargs="+", required=True, help="the ensemble's data folders"
    )
    cascade.add_argument("--out", type=Path, default=None, help="registry folder (default models/)")
    cascade.add_argument("--promote", action="store_true", help="make it the active model")
    cascade.set_defaults(handler=run_cascade)

    bench = commands.add_parser("bench", help="images per second: tutorial's way vs engine")
    bench.add_argument("--model", type=Path, help="artefact folder (default: active model)")
    bench.add_argument("--data", type=Path, required=True)
    bench.add_argument("--seed-model", type=Path, help="seed_cnn artefact for the tutorial's way")
    bench.add_argument("--limit", type=int, default=394, help="images to use")
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument(
        "--runtimes",
        action="store_true",
        help="also TensorFlow vs LiteRT float32/int8 on validation slices (needs ai-edge-litert)",
    )
    bench.set_defaults(handler=run_bench)
    return parser


def _model_path(args: argparse.Namespace) -> Path:
    return args.model if args.model else ModelRegistry().active_path()


def run_train(args: argparse.Namespace) -> None:
    from ml.train import TrainingOptions, as_the_tutorial_trained, train

    options = TrainingOptions(
        architecture=args.arch, epochs=args.epochs, seed=args.seed, split_seed=args.split_seed,
        val_fraction=args.val_fraction, calibration_fraction=args.calibration_fraction,
        batch_size=args.batch_size, guard=not args.no_guard, init_from=args.init_from,
        init_member=args.init_member, distill_from=args.distill_from,
        distill_temperature=args.distill_temperature, distill_weight=args.distill_weight,
        input_size=(args.input_size, args.input_size) if args.input_size else None,
    )  # fmt: skip
    if args.arch == "seed_cnn":
        options = as_the_tutorial_trained(options)
    if args.sequence_randomisation is not None:
        options = dataclasses.replace(options, sequence_randomisation=args.sequence_randomisation)
    if args.learning_rate is not None:
        options = dataclasses.replace(options, learning_rate=args.learning_rate)
    out = args.out or default_registry_root()
    folder = train(args.data, out, options)
    if args.promote:
        ModelRegistry(out).promote(folder.name)
        print(f"promoted {folder.name}")


def run_ensemble(args: argparse.Namespace) -> None:
    from ml.ensemble import make_ensemble

    out = args.out or default_registry_root()
    folder = make_ensemble(args.members, args.data, out, test_time_flip=not args.no_flip)
    if args.promote:
        ModelRegistry(out).promote(folder.name)
        print(f"promoted {folder.name}")


def run_cascade(args: argparse.Namespace) -> None:
    from ml.cascade import make_cascade
    from ml.finalize import calibrate

    out = args.out or default_registry_root()
    folder = make_cascade(args.ensemble, args.data, out)
    calibrate(folder, args.data, with_guard=False)  # the ensemble's guard came along
    if args.promote:
        ModelRegistry(out).promote(folder.name)
        print(f"promoted {folder.name}")


def run_evaluate(args: argparse.Namespace) -> None:
    from ml.evaluation_run import evaluate_model
    from ml.probes import PROBES

    probes = () if args.no_probes else PROBES
    evaluate_model(_model_path(args), args.data, args.split, args.out, probes)


def run_calibrate(args: argparse.Namespace) -> None:
    from ml.calibration import TARGET_MISS_RATE
    from ml.finalize import calibrate

    target = TARGET_MISS_RATE if args.target_miss_rate is None else args.target_miss_rate
    calibrate(args.model, args.data, target, with_guard=not args.no_guard)


def run_litert(args: argparse.Namespace) -> None:
    from ml.preprocessing import PreprocessConfig
    from ml.runtimes import export_litert, validation_images

    metadata = json.loads((args.model / "metadata.json").read_text())
    config = PreprocessConfig.from_metadata(metadata["preprocessing"])
    images = validation_images(args.model, args.data, config, metadata)
    entry = export_litert(args.model, images)
    parity = entry["parity"]
    print(f"wrote {args.model / entry['file']}: on {parity['images']} validation slices "
          f"max |p - keras| {parity['max_abs_diff']:.2g}, labels agree "
          f"{parity['label_agreement']:.1%}")  # fmt: skip


def run_card(args: argparse.Namespace) -> None:
    from ml.card import figure_tables

    print(figure_tables(json.loads((_model_path(args) / "metadata.json").read_text())))


def run_predict(args: argparse.Namespace) -> int:
    from ml.inference import InferenceEngine

    engine = InferenceEngine.load(_model_path(args))
    status = 0
    for path in args.images:
        try:
            prediction = engine.predict([path.read_bytes()])[0]
        except (MLError, OSError) as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            status = 1
            continue
        print(json.dumps(_answer(path, prediction)), flush=True)
    return status


def _answer(path: Path, prediction: Classification) -> dict[str, object]:
    """One line of `predict`: a label with its probabilities, or the guard's refusal and why."""
    if prediction.refusal:
        return {"path": str(path), "outcome": "not_brain_mri", "reason": prediction.refusal,
                "model_version": prediction.model_version}  # fmt: skip
    return {"path": str(path), "outcome": "classified", "label": prediction.label,
            "probabilities": prediction.probabilities, "needs_review": prediction.needs_review,
            "model_version": prediction.model_version}  # fmt: skip


def _registry(args: argparse.Namespace) -> ModelRegistry:
    return ModelRegistry(args.root or default_registry_root())


def run_registry_list(args: argparse.Namespace) -> None:
    for info in _registry(args).versions():
        validation = info.metadata.get("validation") or {}
        figures = (f"val acc {validation['accuracy']:.3f} macro-F1 {validation['macro_f1']:.3f}"
                   if validation else "no validation figures")  # fmt: skip
        marker = "*" if info.active else " "
        print(f"{marker} {info.version:<32} {info.metadata.get('architecture', '?'):<9} {figures}")


def run_registry_promote(args: argparse.Namespace) -> None:
    _registry(args).promote(args.version)
    print(f"active model: {args.version}")


def run_registry_rollback(args: argparse.Namespace) -> None:
    print(f"active model: {_registry(args).rollback()}")


def run_bench(args: argparse.Namespace) -> None:
    from ml.bench import run

    run(_model_path(args), args.data, args.seed_model, args.limit, args.repeats, args.runtimes)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
