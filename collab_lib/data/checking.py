"""check_dataset: scan a whole split and list every problem at once (the CLI is check.py)."""

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
