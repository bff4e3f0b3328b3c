"""The CLI turns every user error into one line on stderr and exit code 2, before any
work or network traffic; no traceback reaches the user."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lipflow.flows.cli import app

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    return result.exit_code, output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["download", "grid", "s21"], "s21 has no video"),
        (["download", "grid", "s99"], "s99"),
        (["download", "lip2wav", "bogus"], "bogus"),
        (["train", "resnet"], "unknown model 'resnet'"),
        (["evaluate", "resnet"], "unknown model 'resnet'"),
        (["prepare", "mycorpus", "anna", "--root", "/no/raw"], "no raw mycorpus corpus"),
        (["prepare", "grid", "s1", "--detector", "huge"], "--detector must be one of"),
        (["track", "x.mp4", "y.mp4", "--detector", "huge"], "--detector must be one of"),
        (["--params", "/no/params.yaml", "track", "x.mp4", "y.mp4"], "no params file at"),
        (["track", "x.mp4", "y.mp4", "--params", "/no/params.yaml"], "no params file at"),
        (["prepare", "grid", "s1", "--runner", "spark"], "unknown runner 'spark'"),
        (["prepare", "grid", "s1", "--runner", "thread", "--address", "tcp://x:1"],
         "needs --runner dask or ray"),
        (["audit", "--format", "xml"], "--format must be md or json"),
        (["sync-score", "/no/such/store.zarr"], "no store at"),
    ],
)
def test_user_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    code, output = invoke(*args)
    assert code == 2, output
    assert message in output
    assert "Traceback" not in output


def test_track_bad_input_exits_2(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    code, output = invoke("track", str(text), str(tmp_path / "out.mp4"))
    assert code == 2
    assert "error:" in output and "notes.mp4" in output
    assert not (tmp_path / "out.mp4").exists()
    code, output = invoke("track", str(tmp_path / "missing.mpg"), str(tmp_path / "out.mp4"))
    assert code == 2 and "missing.mpg" in output


def test_track_writes_video_and_crops(tmp_path: Path, sample_grid: Path) -> None:
    out = tmp_path / "tracked.mp4"
    code, output = invoke("track", str(sample_grid / "s16/bgal9n.mpg"), str(out),
                          "--crops", str(tmp_path / "crops"))
    assert code == 0, output
    assert "75 frames at 25 fps" in output
    assert out.stat().st_size > 0
    assert len(list((tmp_path / "crops").glob("*.png"))) == 75
