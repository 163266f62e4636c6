import numpy as np
import pytest
import torch

from yolo_teach.data import BoxDataset
from yolo_teach.utils import setup


def test_setup_makes_random_draws_repeat():
    setup(seed=3, threads=1)
    a = (torch.rand(3), np.random.rand(3))
    setup(seed=3, threads=1)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert torch.get_num_threads() == 1


def test_box_dataset_normalises_arrays_and_names():
    ds = BoxDataset(
        images=[np.zeros((8, 8, 3), np.uint8)] * 2,
        boxes=[[[0, 0, 4, 4]], np.zeros((0, 4))],
        labels=[[1], []],
        class_names=["a", "b"],
        meta={"hu": ["slice0", "slice1"], "spacing": 0.7},
    )
    assert ds.boxes[0].dtype == np.float32 and ds.boxes[1].shape == (0, 4)
    assert ds.labels[0].dtype == np.int64 and ds.names == ["0000", "0001"]
    sub = ds.subset([1])
    assert len(sub) == 1 and sub.names == ["0001"]
    assert sub.meta == {"hu": ["slice1"], "spacing": 0.7}
    with pytest.raises(ValueError, match="differ in length"):
        BoxDataset(images=[], boxes=[[]], labels=[], class_names=[])


def test_as_numpy_is_the_one_conversion():
    import numpy as np
    import torch

    from yolo_teach.utils import as_numpy

    t = torch.tensor([[1.0, 2, 3, 4]], requires_grad=True)
    assert as_numpy(t).tolist() == [[1, 2, 3, 4]] and as_numpy(t).dtype == np.float64
    assert as_numpy([1, 2], np.int64).dtype == np.int64
    assert as_numpy(np.zeros(0), np.float64, (4,)).shape == (0, 4)  # no box
    assert as_numpy([1, 2, 3, 4], np.float64, (4,)).shape == (1, 4)  # one flat box
    assert as_numpy(torch.tensor(0.5), np.float64, ()).shape == (1,)  # a scalar score
