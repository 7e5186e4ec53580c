"""The command line of check_dataset: scan a whole split and report every problem at once.

    python -m collab_lib.data.check NAME ROOT [--split S] [--class-names road "traffic sign" | road,car]

prints the class names with each one's pixel count, then one line per problem
(missing label, unreadable file, size mismatch, label values outside the
classes, 0/255 binary masks, a missing or malformed classes.txt of the folder
dataset) and exits 1 if there is any.
"""

import argparse
import sys

from . import DATASET_NAMES, check_dataset


def main(argv=None):
    parser = argparse.ArgumentParser(description="Check a segmentation dataset split for problems.")
    parser.add_argument("name", choices=DATASET_NAMES)
    parser.add_argument("root")
    parser.add_argument("--split", default="train")
    parser.add_argument("--class-names", nargs="+", default=None, metavar="NAME",
                        help="folder dataset: the class names (label value i = name i), as several words or "
                             "one comma-separated list; default: read ROOT/classes.txt")
    args = parser.parse_args(argv)
    options = {}
    if args.class_names and args.name != "folder":
        parser.error(f"--class-names is for the folder dataset; {args.name} has its own classes")
    if args.class_names:
        options["class_names"] = [name.strip() for item in args.class_names for name in item.split(",") if name.strip()]
    problems = check_dataset(args.name, args.root, args.split, verbose=True, **options)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
