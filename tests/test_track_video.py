"""The lip-tracking video: frame count and rate kept, crops written, bad input refused."""

from __future__ import annotations

import subprocess

import av
import cv2
import numpy as np
import pytest

from lipflow.tasks.common.errors import ConfigError, MediaError
from lipflow.tasks.common.executables import ffmpeg_exe
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
    assert summary.rejected_chunks == ("frames 0-24 (0.00-1.00 s): no face detected",)
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


def _two_speakers(path):
    """Two GRID speakers side by side: two faces of the same size in every frame."""
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
         "-i", str(SAMPLE_GRID / "s1" / "bbaf2n.mpg"),
         "-i", str(SAMPLE_GRID / "s16" / "bgal9n.mpg"),
         "-filter_complex", "[0:v][1:v]hstack=inputs=2[v]", "-map", "[v]", "-map", "0:a",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)],
        check=True,
    )
    return path


def _red_and_green(path):
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
    red = (r > 180) & (g < 80) & (b < 80)
    green = (g > 160) & (r < 90) & (b < 90)
    return int(red.sum()), int(green.sum())


def test_rejected_window_is_red_with_its_reason_and_has_crops_only_on_request(tmp_path):
    video = _two_speakers(tmp_path / "two.mp4")
    params = with_preprocess(detector="short_range")
    out, crops = tmp_path / "track.mp4", tmp_path / "crops"
    summary = write_track_video(video, out, crops_dir=crops, params=params)
    assert summary.kept_chunks == 0 and summary.num_chunks == 1
    (reason,) = summary.rejected_chunks
    assert reason.startswith("frames 0-74 (0.00-3.00 s): two faces (the second ")
    assert "x the tracked face's area at frame " in reason and " s)" in reason
    red, green = _red_and_green(out)
    assert red > 200 and green < 50  # the box (and the reason) in red, nothing green
    assert summary.num_crops == 0 and list(crops.iterdir()) == []

    every = tmp_path / "all"
    summary = write_track_video(video, tmp_path / "all.mp4", crops_dir=every, params=params,
                                all_crops=True)
    assert summary.num_crops == 75 and len(list(every.glob("*.png"))) == 75


def test_kept_window_is_green(tmp_path):
    out = tmp_path / "track.mp4"
    summary = write_track_video(SAMPLE_GRID / "s1" / "bbaf2n.mpg", out, params=PARAMS)
    assert summary.kept_chunks == 1 and summary.rejected_chunks == ()
    red, green = _red_and_green(out)
    assert green > 200 and red < 50


def _flash_and_beep(path, offset_s):
    """A video stream starting ``offset_s`` after its audio; a white flash and a 1 kHz beep
    at the same presentation time (video-local 2.0 s, audio 2.0 + offset_s)."""
    beep = f"between(t,{2 + offset_s},{2.2 + offset_s})"
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
         "-itsoffset", str(offset_s), "-f", "lavfi",
         "-i", "color=c=black:s=160x120:r=25:d=4,"
               "drawbox=x=0:y=0:w=160:h=120:c=white:t=fill:enable='between(t,2,2.2)'",
         "-f", "lavfi", "-i", f"sine=f=1000:d={4 + offset_s}:sample_rate=16000,"
                               f"volume=0:enable='not({beep})'",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)],
        check=True,
    )
    return path


def test_audio_stays_in_sync_when_the_video_stream_starts_late(tmp_path):
    offset = 0.84
    video = _flash_and_beep(tmp_path / "late.mp4", offset)
    with av.open(str(video)) as c:  # the file really has the offset
        v, a = c.streams.video[0], c.streams.audio[0]
        assert float(v.start_time * v.time_base) - float(a.start_time * a.time_base) > 0.8
    out = tmp_path / "track.mp4"
    write_track_video(video, out, params=PARAMS)
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    with av.open(str(out)) as c:
        rate = c.streams.audio[0].rate
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    flash_s = next(i for i, f in enumerate(frames) if f[40:80, 40:120].mean() > 128) / 25
    loud = np.flatnonzero(np.abs(audio) > 0.3 * np.abs(audio).max())
    beep_s = loud[0] / rate
    assert abs(flash_s - 2.0) <= 0.04
    # in sync to 1.5 frames (AAC in and out each shift the onset by a few ms); ignoring
    # the streams' start offsets puts the beep 0.84 s late
    assert abs(beep_s - flash_s) <= 0.06
