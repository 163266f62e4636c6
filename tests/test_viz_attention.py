"""The attention pictures: thin views over record_attention's maps."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from yolo_teach.layers.attention import CBAM, SE, record_attention  # noqa: E402
from yolo_teach.viz.attention_view import (  # noqa: E402
    draw_channel_bars,
    draw_spatial_attention,
    spatial_overlay,
    top_channels,
)


def test_top_channels_by_hand():
    channel = torch.tensor([[0.1, 0.9, 0.5, 0.7], [0.2, 0.2, 0.2, 0.2]])
    index, weights = top_channels(channel, image=0, top=3)
    assert index.tolist() == [1, 3, 2] and weights == pytest.approx([0.9, 0.7, 0.5])
    assert top_channels(channel, image=1, top=2)[0].tolist() == [0, 1]  # ties: stable order


def test_spatial_overlay_resizes_and_keeps_the_range():
    spatial = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])  # (1, 1, 2, 2)
    heat = spatial_overlay(spatial, (8, 8))
    assert heat.shape == (8, 8) and 0.0 <= heat.min() and heat.max() <= 1.0
    assert heat[0, 7] > heat[0, 0]  # the top-right quarter is the attended one


def test_pictures_from_recorded_maps():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), SE(32), CBAM(32))
    images = torch.rand(2, 3, 16, 16)
    with record_attention(model) as maps:
        model(images)
    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    draw_channel_bars(ax1, maps["2"]["channel"], image=1, top=5, title="CBAM channels")
    assert len(ax1.patches) == 5
    draw_spatial_attention(ax2, images[1], maps["2"]["spatial"], index=1, title="CBAM spatial")
    assert len(ax2.images) == 2 and ax2.images[1].get_array().shape == (16, 16)
    mean = float(maps["2"]["channel"][1].mean())  # the dashed line: mean of all channels
    assert ax1.lines[0].get_ydata()[0] == pytest.approx(mean)


def test_spatial_attention_shows_uint8_images_unclipped():
    """A 0-255 picture is drawn as the same picture in [0, 1], not clipped to white."""
    import numpy as np

    from yolo_teach.viz.attention_view import draw_spatial_attention

    picture = np.full((8, 8, 3), 100, np.uint8)
    spatial = torch.full((1, 1, 2, 2), 0.5)
    ax = Figure().subplots()
    draw_spatial_attention(ax, picture, spatial)
    shown = ax.get_images()[0].get_array()
    assert np.allclose(shown, 100 / 255)
