import numpy as np
import torch
from torch.utils.data import DataLoader

from yolo_teach.data import BoxDataset
from yolo_teach.data.augment import Augment, unletterbox_boxes
from yolo_teach.data.loader import DetectionDataset, collate_detections

SIZE = 96


def tiny_dataset(n=6, seed=0):
    """``n`` images of random sizes, 0-4 boxes each (the first has none)."""
    rng = np.random.default_rng(seed)
    images, boxes, labels = [], [], []
    for i in range(n):
        h, w = rng.integers(40, 140, 2)
        images.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        k = 0 if i == 0 else int(rng.integers(1, 5))
        x = np.sort(rng.uniform(0, w, (k, 2)), 1)
        y = np.sort(rng.uniform(0, h, (k, 2)), 1)
        x[:, 1] = np.maximum(x[:, 1], x[:, 0] + 8).clip(None, w)  # at least ~8 px wide
        y[:, 1] = np.maximum(y[:, 1], y[:, 0] + 8).clip(None, h)
        boxes.append(np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1))
        labels.append(rng.integers(0, 3, k))
    return BoxDataset(images, boxes, labels, class_names=["a", "b", "c"])


def check_item(image, targets, allowed_labels):
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    assert targets.dtype == torch.float32 and targets.shape[1] == 6
    assert (targets[:, 0] == 0).all()
    boxes = targets[:, 2:]
    assert (boxes >= 0).all() and (boxes <= SIZE).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert set(targets[:, 1].long().tolist()) <= allowed_labels


def test_plain_letterbox_items_map_back_to_the_source():
    ds = tiny_dataset()
    data = DetectionDataset(ds, img_size=SIZE)
    for i in range(len(ds)):
        image, targets = data[i]
        check_item(image, targets, {0, 1, 2})
        assert targets[:, 1].long().tolist() == ds.labels[i].tolist()
        r, pad, shape = data.letterbox_params(i)
        assert shape == ds.images[i].shape[:2]
        back = unletterbox_boxes(targets[:, 2:].numpy(), r, pad, shape)
        np.testing.assert_allclose(back, ds.boxes[i], atol=1e-3)


def test_augmented_items_are_valid_and_reproducible_per_epoch():
    ds = tiny_dataset()
    augment = Augment(mixup=0.3, degrees=10, shear=2, blur=0.2)
    data = DetectionDataset(ds, img_size=SIZE, augment=augment, seed=1)
    for epoch in range(3):
        data.set_epoch(epoch)
        for i in range(len(ds)):
            check_item(*data[i], {0, 1, 2})
    data.set_epoch(1)
    first = [data[i] for i in range(len(ds))]
    # a fresh dataset (a resumed run), items asked for in another order: same samples
    resumed = DetectionDataset(ds, img_size=SIZE, augment=augment, seed=1, cache=True)
    resumed.set_epoch(1)
    for i in reversed(range(len(ds))):
        image, targets = resumed[i]
        assert torch.equal(image, first[i][0]) and torch.equal(targets, first[i][1])
    resumed.set_epoch(2)
    assert not torch.equal(resumed[3][0], first[3][0])  # a new epoch draws new augmentations


def test_cache_gives_the_same_items_and_does_not_leak_mutations():
    ds = tiny_dataset()
    plain = DetectionDataset(ds, img_size=SIZE)
    cached = DetectionDataset(ds, img_size=SIZE, cache=True)
    for i in range(len(ds)):
        for _ in range(2):
            a, b = plain[i], cached[i]
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    image, boxes, _ = cached.load_resized(2)
    image[:] = 0
    boxes[:] = -1
    assert cached.load_resized(2)[0].any() and (cached.load_resized(2)[1] >= 0).all()


def test_collate_fills_the_batch_index_and_works_with_a_dataloader():
    ds = tiny_dataset()
    data = DetectionDataset(ds, img_size=SIZE, augment=True)
    loader = DataLoader(
        data, batch_size=3, shuffle=False, num_workers=0, collate_fn=collate_detections
    )
    batches = list(loader)
    assert len(batches) == 2
    images, targets = batches[0]
    assert images.shape == (3, 3, SIZE, SIZE) and targets.shape[1] == 6
    expected = torch.cat([torch.full((len(data[i][1]),), float(i)) for i in range(3)])
    assert torch.equal(targets[:, 0], expected)
    for b in range(3):
        assert torch.equal(targets[targets[:, 0] == b, 1:], data[b][1][:, 1:])
    # hand-made batch: 2 boxes in image 0, none in image 1, 1 box in image 2 -> indices 0, 0, 2
    empty = torch.zeros(0, 6)
    one, two = torch.ones(1, 6), torch.ones(2, 6)
    _, t = collate_detections(
        [(torch.zeros(3, 4, 4), two), (torch.zeros(3, 4, 4), empty), (torch.zeros(3, 4, 4), one)]
    )
    assert t[:, 0].tolist() == [0, 0, 2] and (two[:, 0] == 1).all()  # inputs untouched


def test_any_indexable_source_works():
    ds = tiny_dataset()
    source = [ds[i] for i in range(len(ds))]
    data = DetectionDataset(source, img_size=SIZE, augment=Augment(mosaic=0.5))
    for i in range(len(source)):
        check_item(*data[i], {0, 1, 2})
