"""GaborFea2Speech: the seven lip features on drawn mouths, empty-frame handling, deltas,
and the LSTM model's shapes and training."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from lipflow.models.nets import gabor
from lipflow.tasks.common.errors import ConfigError
from tests.support.seed_models import one_thread, tiny_cfg  # noqa: F401


def _mouth(opening_px: int, centre=(50, 30), size=(60, 100)) -> np.ndarray:
    """A dark ellipse (an open mouth) on a bright crop."""
    img = np.full(size, 200, np.uint8)
    cv2.ellipse(img, centre, (25, opening_px // 2 + 2), 0, 0, 360, 40, -1)
    return img


def test_kernel_matches_the_paper() -> None:
    k = gabor.gabor_kernel()
    assert k.shape == (13, 13)  # OpenCV centres a (12, 12) request: x and y from -6 to 6
    expected = cv2.getGaborKernel((12, 12), 5, math.pi / 2, 10, 0.5, 0, ktype=cv2.CV_32F)
    assert np.array_equal(k, expected)


def test_features_track_mouth_opening_and_position() -> None:
    frames = np.stack([_mouth(h) for h in (6, 10, 14, 18)])
    feats = gabor.gabor_features(frames)
    assert feats.shape == (4, 7) and feats.dtype == np.float32
    names = list(gabor.FEATURE_NAMES)
    height, area = feats[:, names.index("box_height")], feats[:, names.index("area")]
    assert np.all(np.diff(height) > 0) and np.all(np.diff(area) > 0)
    assert np.allclose(feats[:, names.index("centroid_x")], 50, atol=1.5)
    assert np.allclose(feats[:, names.index("centroid_y")], 30, atol=1.5)
    assert np.all(feats[:, names.index("box_width")] > 45)  # the 50 px wide mouth
    # a horizontal region: skimage orientation is +-pi/2
    assert np.allclose(np.abs(feats[:, names.index("orientation")]), math.pi / 2, atol=0.1)


def test_region_nearest_the_centre_wins() -> None:
    img = _mouth(10)
    cv2.rectangle(img, (2, 2), (20, 8), 0, -1)  # a dark blob in the corner
    feats = gabor.gabor_features(img[None])
    assert feats[0, 3] == pytest.approx(50, abs=1.5) and feats[0, 4] == pytest.approx(30, abs=1.5)


def test_empty_frames_repeat_the_previous_features() -> None:
    flat = np.full((60, 100), 128, np.uint8)
    frames = np.stack([flat, _mouth(10), flat, _mouth(16)])
    feats = gabor.gabor_features(frames)
    assert np.all(feats[0] == 0)  # nothing before it: zeros
    assert np.array_equal(feats[2], feats[1])
    assert not np.array_equal(feats[3], feats[1])


def test_features_are_deterministic() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 60)).astype(np.uint8)
    assert np.array_equal(gabor.gabor_features(frames), gabor.gabor_features(frames.copy()))


def test_normalised_orientation_is_continuous_for_horizontal_mouths() -> None:
    raw = np.zeros((2, 7), np.float32)
    raw[:, 6] = [math.pi / 2 - 1e-3, -math.pi / 2 + 1e-3]  # the same horizontal line
    norm = gabor.normalise_features(raw, 60, 100)
    assert abs(norm[0, 6] - norm[1, 6]) < 0.01 and abs(norm[0, 6]) < 0.01


def test_deltas_of_a_ramp() -> None:
    ramp = np.arange(20, dtype=np.float32)[:, None] * np.ones((1, 7), np.float32)
    out = gabor.add_deltas(ramp)
    assert out.shape == (20, 21)
    assert np.allclose(out[5:15, 7:14], 1.0, atol=1e-5)  # slope 1
    assert np.allclose(out[5:15, 14:], 0.0, atol=1e-5)  # no curvature
    assert gabor.add_deltas(ramp[:1]).shape == (1, 21)  # too short for a window: zeros


def test_bad_frame_shape_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\(T, H, W\)"):
        gabor.gabor_features(np.zeros((4, 60, 100, 3), np.uint8))


def test_model_maps_features_to_the_mel_and_trains() -> None:
    torch.manual_seed(0)
    model = gabor.build(tiny_cfg("gabor"))
    frames = np.stack([_mouth(4 + (t % 8) * 2) for t in range(25)])
    batch = {
        "video": torch.from_numpy(np.stack([frames, frames[::-1].copy()])),
        "mel": torch.rand(2, 80, 80) * 8 - 4,
        "valid_frames": torch.tensor([25, 25]),
    }
    assert gabor.batch_inputs(batch).shape == (2, 25, 21)
    model.eval()
    assert gabor.predict(model, batch).shape == (2, 80, 80)
    assert gabor.predict(model, {"video": batch["video"]}).shape == (2, 80, 80)  # 25 * 80/25
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        value = gabor.loss(model, batch)
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
        losses.append(float(value.detach()))
    assert losses[-1] < losses[0]
    # precomputed features are used as they are
    pre = {**batch, "gabor": torch.zeros(2, 25, 21)}
    assert torch.equal(gabor.batch_inputs(pre), torch.zeros(2, 25, 21))
