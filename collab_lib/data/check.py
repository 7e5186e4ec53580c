"""Scan a whole split and report every problem at once.

    python -m collab_lib.data.check NAME ROOT [--split S] [--class-names a,b,c]

prints one line per problem (missing label, unreadable file, size mismatch,
label values outside the classes, 0/255 binary masks) and exits 1 if any.
"""

import argparse
import sys

from .io import DatasetError


def check_dataset(name, root=None, split="train", verbose=False, **options):
    """List of problem strings for split `split` of dataset `name` (empty if every item loads cleanly).

    Reads every image and label once (no augmentation), so it costs one pass over the files.
    """
    from . import DATASETS  # late import: the package imports this module

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    try:
        dataset = DATASETS[name](root=root, split=split, augment=False,
                                 **({} if name == "streets" else {"strict": False}), **options)
    except DatasetError as err:
        problems = [str(err)]
    else:
        problems = list(dataset.problems)
        for index in range(len(dataset)):
            try:
                dataset.load(index)
            except DatasetError as err:
                problems.append(str(err))
        if not len(dataset) and not problems:
            problems.append(f"{name} {split}: no items found under {root}")
    if verbose:
        for problem in problems:
            print(problem)
        print(f"{name} {split}: {len(problems)} problem(s)")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description="Check a segmentation dataset split for problems.")
    parser.add_argument("name")
    parser.add_argument("root")
    parser.add_argument("--split", default="train")
    parser.add_argument("--class-names", default=None, help="comma-separated, for the folder dataset")
    args = parser.parse_args(argv)
    options = {"class_names": args.class_names.split(",")} if args.class_names else {}
    problems = check_dataset(args.name, args.root, args.split, verbose=True, **options)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
