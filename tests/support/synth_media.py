"""Fixtures for the synthesize tests: a tiny lip2wav trained on a sample clip, and videos
made from the sample with ffmpeg (silent, 29.97 fps, looped, with a faceless stretch)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import torch

from lipflow.tasks.common.executables import ffmpeg_exe

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data/samples/grid/s1/bbaf2n.mpg"
SAMPLES = sorted((ROOT / "data/samples/grid/s1").glob("*.mpg"))


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", *args], check=True)


def sample_clips(work: Path) -> list[dict[str, torch.Tensor]]:
    """The s1 sample videos prepared by lipflow's own preprocessing, as training items."""
    from lipflow.tasks.contracts.clip_record import load_clip
    from lipflow.tasks.prepare.settings import speaker_settings
    from lipflow.tasks.prepare.video import preprocess_video
    from lipflow.tasks.settings.project import load_params

    settings, _ = speaker_settings(load_params(ROOT / "params.yaml"), "grid", "s1")
    work.mkdir(parents=True, exist_ok=True)
    items = []
    for video in SAMPLES:
        record = {"corpus": "grid", "speaker": "s1", "utterance_id": video.stem,
                  "language": "en", "split": None, "video_path": video.name}
        for row in preprocess_video(record, video.parent, work, settings):
            if row["kept"]:
                clip = load_clip(Path(row["clip_path"]))
                items.append({"video": torch.from_numpy(clip["face"]),
                              "mel": torch.from_numpy(clip["mel"]),
                              "wav": torch.from_numpy(clip["wav"]),
                              "valid_frames": torch.tensor(int(clip["valid_frames"]))})
    return items


def train_tiny_lip2wav(out_dir: Path, epochs: int = 2,
                       decoder: str = "nonautoregressive") -> Path:
    """A tiny lip2wav (non-autoregressive unless told) trained on the sample; returns its
    ``best.pt``."""
    from torch.utils.data import DataLoader

    from lipflow.models import training
    from tests.support.seed_models import tiny_cfg

    items = sample_clips(out_dir / "clips")
    loader = DataLoader(items, batch_size=2)
    cfg = tiny_cfg("lip2wav", epochs=epochs, seed=0, fps=25.0, decoder=decoder)
    training.train("lip2wav", loader, loader, cfg, out_dir, progress=False)
    best = out_dir / "best.pt"
    assert best.is_file()
    return best


def strip_audio(src: Path, out: Path) -> Path:
    ffmpeg("-i", str(src), "-an", "-c:v", "copy", str(out))
    return out


def ntsc_mp4(src: Path, out: Path, audio: bool = False) -> Path:
    """``src`` re-encoded as H.264 at 29.97 fps (every frame shown for 1001/30000 s)."""
    ffmpeg("-i", str(src), "-r", "30000/1001", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", *([] if audio else ["-an"]), str(out))
    return out


def looped(src: Path, out: Path, loops: int) -> Path:
    """``src`` played ``loops`` times in a row, silent (-stream_loop; video re-encoded so
    timestamps run on)."""
    ffmpeg("-stream_loop", str(loops - 1), "-i", str(src), "-an", "-c:v", "mpeg4", "-q:v", "3",
           str(out))
    return out


def with_black_gap(src: Path, out: Path, black_s: float) -> Path:
    """``src``, then ``black_s`` seconds of a black frame, then ``src`` again (silent)."""
    ffmpeg("-i", str(src), "-f", "lavfi", "-i",
           f"color=c=black:s=360x288:r=25:d={black_s}", "-i", str(src), "-filter_complex",
           "[0:v]fps=25,format=yuv420p,setsar=1[a];[1:v]format=yuv420p,setsar=1[b];"
           "[2:v]fps=25,format=yuv420p,setsar=1[c];[a][b][c]concat=n=3:v=1:a=0[v]",
           "-map", "[v]", "-an", "-c:v", "mpeg4", "-q:v", "3", str(out))
    return out


def max_jump(wav: np.ndarray) -> float:
    return float(np.max(np.abs(np.diff(wav.astype(np.float64))))) if len(wav) > 1 else 0.0
