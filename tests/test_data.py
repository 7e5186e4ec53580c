"""Tests for the embedded synthetic streets and the shared augmentation.

They check behaviour (determinism, what the scenes contain, alignment of
image and label under augmentation), not just shapes. Scenes are rendered at
small sizes to stay fast.
"""

import os

import numpy as np
import pytest
import torch

from collab_lib.data import (DATASET_NAMES, IMAGENET_MEAN, IMAGENET_STD, TEXTURE_LICENCES, build_dataset,
                             check_dataset, denormalize)
from collab_lib.data.augment import SegmentationTransform
from collab_lib.data.street_classes import CLASS_NAMES, POLE, SIGN
from collab_lib.data.streets import StreetsDataset, render_item
from collab_lib.data.textures import _skimage_data_folder

SMALL = (64, 128)


def grey_histogram(values):
    counts, _ = np.histogram(values, bins=16, range=(0, 256))
    return counts / counts.sum()


def row_runs(mask):
    """Lengths of the horizontal runs of True in a bool (H, W) mask."""
    padded = np.pad(mask.astype(np.int8), ((0, 0), (1, 1)))
    edges = np.diff(padded, axis=1)
    return (np.flatnonzero(edges.ravel() == -1) - np.flatnonzero(edges.ravel() == 1))


# ---------------------------------------------------------------- interface

def test_public_names_and_unknown_dataset():
    assert DATASET_NAMES == ("streets", "cityscapes", "camvid", "voc", "folder")
    with pytest.raises(ValueError, match="streets, cityscapes, camvid, voc, folder"):
        build_dataset("imagenet")


def test_item_types_and_attributes():
    ds = build_dataset("streets", split="val", size=SMALL)
    image, label = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, *SMALL)
    assert label.dtype == torch.int64 and label.shape == SMALL
    assert ds.class_names == CLASS_NAMES and ds.num_classes == 11 and ds.ignore_index == 255
    assert ds.palette.dtype == np.uint8 and ds.palette.shape == (11, 3)
    assert ds.synthetic is True and "SYNTHETIC" in type(ds).__doc__
    assert ds.augment is False and build_dataset("streets", size=SMALL).augment is True
    assert [len(build_dataset("streets", split=s)) for s in ("train", "val", "test")] == [200, 100, 250]


def test_denormalize_inverts_normalisation():
    raw, _ = render_item(0, "val", 0, SMALL)
    image, _ = SegmentationTransform()(raw, np.zeros(SMALL, np.uint8), None)
    expected = (raw / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert np.abs(denormalize(image).astype(int) - raw).max() <= 1


# ---------------------------------------------------------------- scenes

def test_scenes_are_deterministic_and_splits_differ():
    a_image, a_label = render_item(0, "train", 3, SMALL)
    b_image, b_label = render_item(0, "train", 3, SMALL)
    assert np.array_equal(a_image, b_image) and np.array_equal(a_label, b_label)
    others = [render_item(0, "val", 3, SMALL), render_item(0, "test", 3, SMALL), render_item(1, "train", 3, SMALL),
              render_item(0, "train", 4, SMALL)]
    for image, label in others:
        assert not np.array_equal(image, a_image) and not np.array_equal(label, a_label)
    # the dataset without augmentation returns exactly the rendered scene
    ds = StreetsDataset(split="train", size=SMALL, augment=False)
    image, label = ds[3]
    assert np.array_equal(label.numpy(), a_label) and np.array_equal(denormalize(image), a_image)


def test_every_class_appears_and_values_are_valid():
    seen = set()
    for index in range(12):
        _, label = render_item(0, "train", index, (128, 256))
        values = set(np.unique(label).tolist())
        assert values <= set(range(11)) | {255}
        seen |= values
    assert set(range(11)) <= seen
    ignored = np.mean([(render_item(0, "train", i, SMALL)[1] == 255).mean() for i in range(12)])
    assert ignored < 0.02  # 255 is used sparingly (unlabelled clutter only)


def test_thin_classes_are_thin():
    runs, pole_share, sign_share = [], [], []
    for index in range(10):
        _, label = render_item(0, "train", index, (128, 256))
        runs.extend(row_runs(label == POLE))
        pole_share.append((label == POLE).mean())
        sign_share.append((label == SIGN).mean())
    assert len(runs) > 100
    assert np.median(runs) <= 2 and np.percentile(runs, 90) <= 4  # poles are 1-2 pixels wide at 128x256
    assert np.mean(pole_share) < 0.02 and max(sign_share) < 0.02


def test_road_and_sidewalk_share_appearance():
    """Most scenes pave road and sidewalk alike: their grey-level histograms overlap, unlike road and sky."""
    road_sidewalk, road_sky = [], []
    for index in range(12):
        image, label = render_item(0, "train", index, (128, 256))
        grey = image.mean(-1)
        road, sidewalk, sky = (label == 0), (label == 1), (label == 8)
        if road.sum() > 200 and sidewalk.sum() > 200 and sky.sum() > 200:
            road_sidewalk.append(np.minimum(grey_histogram(grey[road]), grey_histogram(grey[sidewalk])).sum())
            road_sky.append(np.minimum(grey_histogram(grey[road]), grey_histogram(grey[sky])).sum())
    assert len(road_sidewalk) >= 8
    assert np.median(road_sidewalk) > 0.6 and np.median(road_sky) < 0.3


def test_scene_is_the_same_at_every_resolution():
    _, small = render_item(0, "train", 7, (64, 128))
    _, large = render_item(0, "train", 7, (128, 256))
    assert (large[1::2, 1::2] == small).mean() > 0.85  # sampled at nearby points: same layout


def test_sizes_must_be_multiples_of_32():
    image, label = render_item(0, "train", 0, (96, 160))
    assert image.shape == (96, 160, 3) and label.shape == (96, 160)
    with pytest.raises(ValueError, match=r"nearest valid size: \(96, 256\)"):
        StreetsDataset(size=(100, 250))
    with pytest.raises(ValueError, match=r"nearest valid size: \(32, 64\)"):
        StreetsDataset(size=(8, 70))


def test_memory_cache_and_endless():
    ds = StreetsDataset(size=SMALL, num_samples=5)
    assert ds.load(2)[0] is ds.load(2)[0]  # rendered once, then reused
    assert len(ds.prerender()._memory) == 5
    endless = StreetsDataset(size=SMALL, endless=True)
    assert len(endless) == 10**9
    image, label = endless[123_456_789]
    assert label.shape == SMALL and not endless._memory
    with pytest.raises(ValueError, match="endless"):
        StreetsDataset(endless=True, cache_dir="somewhere")


def test_cache_dir_round_trip(tmp_path):
    cached = StreetsDataset(split="val", size=SMALL, num_samples=3, cache_dir=tmp_path)
    memory = StreetsDataset(split="val", size=SMALL, num_samples=3)
    for index in range(3):
        for x, y in zip(cached[index], memory[index]):
            assert torch.equal(x, y)
    files = sorted(os.listdir(cached.cache_folder))
    assert len(files) == 6 and not any(".tmp" in name for name in files)
    again = StreetsDataset(split="val", size=SMALL, num_samples=3, cache_dir=tmp_path)  # reads the PNGs back
    image, label = again.load(1)
    assert np.array_equal(label, memory.load(1)[1]) and np.array_equal(image, memory.load(1)[0])


def test_check_dataset_on_streets_is_clean():
    assert check_dataset("streets", split="val", size=SMALL, num_samples=4) == []


def test_texture_licences_name_shipped_files():
    for name, licence in TEXTURE_LICENCES.items():
        assert "CC0" in licence
        assert os.path.exists(os.path.join(_skimage_data_folder(), name))


# ---------------------------------------------------------------- augmentation

def colour_blocks(height=48, width=64, block=8, seed=0):
    """An image whose label is a function of the pixel colour: class k is pure red, green or blue."""
    rng = np.random.default_rng(seed)
    label = np.kron(rng.integers(0, 3, (height // block, width // block)), np.ones((block, block), int))
    image = np.zeros((height, width, 3), np.uint8)
    image[np.arange(height)[:, None], np.arange(width)[None, :], label] = 230
    return image, label.astype(np.uint8)


def test_augmentation_keeps_image_and_label_aligned():
    image, label = colour_blocks()
    transform = SegmentationTransform(crop_size=(40, 56), augment=True)
    for seed in range(12):
        out_image, out_label = transform(image, label, np.random.default_rng(seed))
        colour_class = denormalize(out_image).argmax(-1)
        out_label = out_label.numpy()
        # inside uniform 5x5 neighbourhoods (away from edges that bilinear scaling by up to 2 blends)
        # colour and label must agree
        padded = np.pad(out_label, 2, constant_values=-1)  # the crop's border: neighbours unknown
        windows = np.stack([padded[r:r + out_label.shape[0], c:c + out_label.shape[1]]
                            for r in range(5) for c in range(5)])
        uniform = (windows == out_label).all(0) & (out_label != 255)
        assert uniform.sum() > 50
        assert (colour_class[uniform] == out_label[uniform]).all()


def test_horizontal_flip_happens_and_matches_the_label():
    image, label = colour_blocks()
    transform = SegmentationTransform(augment=True, scale_range=(1.0, 1.0), jitter=0.0)
    flipped = 0
    for seed in range(20):
        out_image, out_label = transform(image, label, np.random.default_rng(seed))
        if torch.equal(out_label, torch.from_numpy(label[:, ::-1].astype(np.int64))):
            flipped += 1
            assert np.abs(denormalize(out_image).astype(int) - image[:, ::-1]).max() <= 1
        else:
            assert torch.equal(out_label, torch.from_numpy(label.astype(np.int64)))
    assert 3 <= flipped <= 17


def test_crop_padding_uses_ignore_and_mean_colour():
    image, label = colour_blocks()
    transform = SegmentationTransform(crop_size=(64, 96), augment=True, scale_range=(0.5, 0.5), flip=False, jitter=0)
    out_image, out_label = transform(image, label, np.random.default_rng(0))
    assert out_label.shape == (64, 96)
    pad = out_label == 255
    assert pad.sum() == 64 * 96 - 24 * 32  # the scaled image is 24x32; the rest is padding
    assert torch.all(out_image[:, pad] == 0)  # 0 after normalising = the ImageNet mean colour
    assert set(out_label[~pad].unique().tolist()) <= {0, 1, 2}


def test_eval_resize_and_no_randomness():
    image, label = colour_blocks()
    transform = SegmentationTransform(crop_size=(24, 32), augment=False)
    a, b = transform(image, label, None), transform(image, label, None)
    assert a[0].shape == (3, 24, 32) and torch.equal(a[1], b[1])
    assert torch.equal(a[1], torch.from_numpy(label[::2, ::2].astype(np.int64)))  # nearest keeps block classes


def test_set_epoch_makes_augmentation_reproducible():
    ds = StreetsDataset(size=SMALL, num_samples=8, crop_size=(48, 96))
    ds.set_epoch(3)
    first = ds[5]
    ds.set_epoch(0)
    other = ds[5]
    assert not torch.equal(first[0], other[0])
    fresh = StreetsDataset(size=SMALL, num_samples=8, crop_size=(48, 96))  # a resumed run
    fresh.set_epoch(3)
    again = fresh[5]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_set_epoch_reaches_persistent_workers():
    ds = StreetsDataset(size=SMALL, num_samples=4, crop_size=(32, 64))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        (images, labels), = list(loader)
        expected = torch.stack([ds[i][1] for i in range(4)])  # main process, same epoch
        assert torch.equal(labels, expected)
    assert not torch.equal(expected, torch.stack([StreetsDataset(size=SMALL, num_samples=4, crop_size=(32, 64))[i][1]
                                                   for i in range(4)]))
