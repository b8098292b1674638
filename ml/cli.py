"""Command line: `python -m ml train | evaluate | predict | registry | bench`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ml.errors import MLError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except MLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train(commands)
    _add_evaluate(commands)
    _add_predict(commands)
    _add_registry(commands)
    _add_bench(commands)
    return parser


def _add_train(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser("train", help="train a model, write a versioned artefact")
    command.add_argument("--data", type=Path, required=True, help="folder of class folders")
    command.add_argument("--arch", default="mri_cnn", choices=("mri_cnn", "seed_cnn", "tiny"))
    command.add_argument("--epochs", type=int, default=60)
    command.add_argument("--out", type=Path, default=None, help="default: the registry root")
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--val-fraction", type=float, default=0.2)
    command.add_argument("--batch-size", type=int, default=32)
    command.add_argument("--patience", type=int, default=12)
    command.add_argument("--no-cache", action="store_true", help="do not cache preprocessed arrays")
    command.add_argument("--tta", choices=("none", "hflip"), default="none",
                         help="test-time augmentation the served model will use")  # fmt: skip
    command.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from ml.registry import default_registry_root
    from ml.train import TrainingOptions, train

    options = TrainingOptions(
        architecture=args.arch, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        val_fraction=args.val_fraction, patience=args.patience, test_time_augmentation=args.tta,
    )  # fmt: skip
    if args.no_cache:
        options.cache_dir = None
    folder = train(args.data, args.out or default_registry_root(), options)
    print(folder)
    return 0


def _add_evaluate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser("evaluate", help="metrics, confusion matrix, calibration")
    _add_model_option(command)
    command.add_argument("--data", type=Path, required=True)
    command.add_argument(
        "--split", choices=("val", "all"), default="val",
        help="val: only the held-out groups recorded in the model's metadata",
    )  # fmt: skip
    command.add_argument("--out", type=Path, default=None, help="default: the model's folder")
    command.add_argument("--tta", choices=("none", "hflip"), default=None,
                         help="override the model's recorded test-time augmentation")  # fmt: skip
    command.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from ml.evaluate import evaluate_folder, format_table

    model_dir = _model_dir(args.model)
    metrics, written = evaluate_folder(model_dir, args.data, args.split, args.out, args.tta)
    print(format_table(metrics))
    print(f"wrote {written}")
    return 0


def _add_predict(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser("predict", help="classify images, one JSON line each")
    _add_model_option(command)
    command.add_argument("images", nargs="+", type=Path)
    command.set_defaults(handler=_predict)


def _predict(args: argparse.Namespace) -> int:
    import json

    from ml.errors import InvalidImageError
    from ml.inference import InferenceEngine, configure_tensorflow

    configure_tensorflow()
    engine = InferenceEngine.load(_model_dir(args.model))
    contents = [_read_bytes(path) for path in args.images]
    outcomes = engine.predict_outcomes([data or b"" for data in contents])
    failed = False
    for path, data, outcome in zip(args.images, contents, outcomes, strict=True):
        if data is None or isinstance(outcome, InvalidImageError):
            reason = "cannot read file" if data is None else str(outcome)
            print(f"error: {path}: {reason}", file=sys.stderr)
            failed = True
            continue
        print(json.dumps({"path": str(path), "label": outcome.label,
                          "probabilities": outcome.probabilities,
                          "model_version": outcome.model_version}))  # fmt: skip
    return 1 if failed else 0


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _add_registry(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser("registry", help="list, promote or roll back model versions")
    command.add_argument("--root", type=Path, default=None, help="default: $MODEL_REGISTRY_DIR "
                         "or the repository's models/")  # fmt: skip
    actions = command.add_subparsers(dest="action", required=True)
    actions.add_parser("list")
    promote = actions.add_parser("promote")
    promote.add_argument("version")
    actions.add_parser("rollback")
    command.set_defaults(handler=_registry)


def _registry(args: argparse.Namespace) -> int:
    from ml.registry import ModelRegistry

    registry = ModelRegistry(args.root)
    if args.action == "promote":
        registry.promote(args.version)
        print(f"active: {args.version}")
    elif args.action == "rollback":
        print(f"active: {registry.rollback()}")
    else:
        for info in registry.versions():
            accuracy = info.metadata.get("validation_metrics", {}).get("accuracy")
            figure = f"val_acc {accuracy:.4f}" if isinstance(accuracy, float) else ""
            print(f"{'*' if info.active else ' '} {info.version:<32} {figure}")
    return 0


def _add_bench(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser("bench", help="images/s: tutorial way, decode alone, engine")
    _add_model_option(command)
    command.add_argument("--data", type=Path, required=True, help="folder of images (recursive)")
    command.add_argument("--limit", type=int, default=394)
    command.add_argument("--seed-model", type=Path, default=None,
                         help="model for the tutorial's way (default: --model)")  # fmt: skip
    command.add_argument("--repeats", type=int, default=3)
    command.add_argument("--tutorial-limit", type=int, default=100,
                         help="images for the slow tutorial way")  # fmt: skip
    command.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from ml.bench import run_bench

    for line in run_bench(_model_dir(args.model), args.data, args.limit, args.seed_model,
                          args.repeats, args.tutorial_limit):  # fmt: skip
        print(line, flush=True)
    return 0


def _add_model_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--model", type=Path, default=None,
                         help="artefact folder (default: the registry's active model)")  # fmt: skip


def _model_dir(path: Path | None) -> Path:
    from ml.registry import ModelRegistry

    return path if path is not None else ModelRegistry().active_path()
