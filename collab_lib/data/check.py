"""Scan a whole split and report every problem at once.

    python -m collab_lib.data.check NAME ROOT [--split S] [--class-names a,b,c]

prints one line per problem (missing label, unreadable file, size mismatch,
label values outside the classes, 0/255 binary masks) and exits 1 if any.
"""

import argparse
import sys

from .checking import check_dataset


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
