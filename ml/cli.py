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
    command.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from ml.registry import default_registry_root
    from ml.train import TrainingOptions, train

    options = TrainingOptions(
        architecture=args.arch, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        val_fraction=args.val_fraction, patience=args.patience,
    )  # fmt: skip
    if args.no_cache:
        options.cache_dir = None
    folder = train(args.data, args.out or default_registry_root(), options)
    print(folder)
    return 0
