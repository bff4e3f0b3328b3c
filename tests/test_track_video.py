"""The lip-tracking video: frame count and rate kept, crops written, bad input refused."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lipflow.tasks.common.errors import ConfigError, MediaError
from lipflow.tasks.faces.overlay import write_track_video
from lipflow.tasks.settings.project import load_params
from tests.support.faces import SAMPLE_GRID, probe_video, write_testsrc

PARAMS = load_params(SAMPLE_GRID.parents[2] / "params.yaml")


def with_preprocess(**changes) -> dict:
    return {**PARAMS, "preprocess": {**PARAMS["preprocess"], **changes}}


def test_mp4_track_video_keeps_frames_and_rate_and_writes_crops(tmp_path):
    video = SAMPLE_GRID / "s1" / "bbaf2n.mpg"
    out, crops = tmp_path / "out" / "track.mp4", tmp_path / "crops"
    summary = write_track_video(video, out, crops_dir=crops,
                                params=with_preprocess(mouth_preset="square"))
    assert probe_video(out) == (75, 25.0, 360, 288)
    assert summary.num_frames == 75 and summary.fps == 25.0
    assert summary.detection_rate == 1.0 and summary.rejected_chunks == ()
    pngs = sorted(crops.glob("*.png"))
    assert [p.name for p in pngs[:2]] == ["000000.png", "000001.png"] and len(pngs) == 75
    first = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
    assert first.shape == (96, 96) and first.dtype == np.uint8
    assert sorted(p.name for p in out.parent.iterdir()) == ["track.mp4"]  # no temp left


def test_avi_output_with_cnn3d_crops(tmp_path):
    video = SAMPLE_GRID / "s27" / "bbbp8n.mpg"
    out, crops = tmp_path / "track.avi", tmp_path / "crops"
    write_track_video(video, out, crops_dir=crops, params=with_preprocess(mouth_preset="cnn3d"))
    assert probe_video(out)[:2] == (75, 25.0)
    crop = cv2.imread(str(crops / "000074.png"), cv2.IMREAD_UNCHANGED)
    assert crop.shape == (60, 100)


def test_drawn_boxes_are_on_the_face(tmp_path):
    import av

    out = tmp_path / "track.mp4"
    write_track_video(SAMPLE_GRID / "s16" / "bgal9n.mpg", out, params=PARAMS)
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    green = (frame[:, :, 1] > 160) & (frame[:, :, 0] < 90) & (frame[:, :, 2] < 90)
    ys, xs = np.nonzero(green)
    assert len(xs) > 200  # the face box outline
    assert 60 < xs.mean() < 300 and 60 < ys.mean() < 250


def test_video_without_a_face_is_written_and_reports_the_rejection(tmp_path):
    video = write_testsrc(tmp_path / "testsrc.mp4", seconds=1.0)
    out, crops = tmp_path / "track.mp4", tmp_path / "crops"
    summary = write_track_video(video, out, crops_dir=crops, params=PARAMS)
    assert probe_video(out)[:2] == (25, 25.0)
    assert summary.detection_rate == 0.0
    assert summary.rejected_chunks == ("frames 0-24: no face detected",)
    assert summary.num_crops == 0 and list(crops.iterdir()) == []


def test_non_media_and_missing_inputs_are_media_errors(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    out = tmp_path / "out.mp4"
    with pytest.raises(MediaError, match="notes.mp4"):
        write_track_video(text, out, params=PARAMS)
    with pytest.raises(MediaError, match="no such file"):
        write_track_video(tmp_path / "missing.mpg", out, params=PARAMS)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        write_track_video(empty, out, params=PARAMS)
    assert not out.exists()


def test_unsupported_output_type_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="output must end in"):
        write_track_video(SAMPLE_GRID / "s1" / "bbaf2n.mpg", tmp_path / "out.gif", params=PARAMS)
