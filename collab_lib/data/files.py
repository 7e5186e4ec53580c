"""Finding a dataset's files on disk (folders, image listings, names), with errors that say what layout was expected."""

import os

from .io import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def require_folder(path, dataset, layout, source):
    """Raise DatasetError naming the expected layout and where the data comes from, unless `path` is a folder."""
    if path is None:
        raise DatasetError(f"{dataset}: no data folder given: pass data_root (--data-root DIR on the command line, "
                           f"-p data_root DIR with papermill). Expected layout:\n{layout}\nOfficial data: {source}")
    if not os.path.isdir(path):
        raise DatasetError(f"{dataset}: folder {path} not found. Expected layout:\n{layout}\n"
                           f"Official data: {source}")
    return os.fspath(path)


def list_images(folder):
    """Sorted paths of the image files directly in `folder` (any extension in IMAGE_EXTENSIONS)."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith("."))
    return [os.path.join(folder, n) for n in names]


def stem(path):
    """File name without folder and extension."""
    return os.path.splitext(os.path.basename(path))[0]


def pair_by_name(image_folder, label_folder, label_kind="label"):
    """(pairs, problems): each image in `image_folder` with the PNG of the same name in `label_folder`.

    pairs: [(image path, label path)]; problems: one line per image without its label file.
    """
    pairs, problems = [], []
    for image in list_images(image_folder):
        label = os.path.join(label_folder, stem(image) + ".png")
        if os.path.exists(label):
            pairs.append((image, label))
        else:
            problems.append(f"{image}: no {label_kind} (expected {label})")
    return pairs, problems
