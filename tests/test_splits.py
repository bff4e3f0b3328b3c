"""Named splits: the published GRID protocols (VCA-GAN's lists, kind ``lists_file``) give
exactly the listed utterances per part, the seeded split stays as it was, and bad lists
are clear errors. Manifests are synthetic: one row per clip, as prepare writes them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lipflow.models import splits
from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.contracts.clip_manifest import write_clip_manifest
from lipflow.tasks.contracts.store_layout import manifest_path_for
from lipflow.tasks.settings.project import load_params
from tests.support.clips import build_store, clip_rows

LISTS = Path(__file__).resolve().parents[1] / "models" / "split_lists" / "vcagan_grid"
PARAMS = load_params()


def _listed(name: str, part: str | None = None) -> list[tuple[str, str]]:
    """(speaker, utterance) of each line of a published list, read independently of
    lipflow: ``s1/video/sbag8n.mp4`` -> ``("s1", "sbag8n")``, ``val/s20/x`` -> part val."""
    out = []
    for line in (LISTS / name).read_text().split("\n"):
        fields = line.strip().split("/")
        if fields == [""]:
            continue
        if fields[0] in ("train", "val", "test"):
            if fields.pop(0) != part:
                continue
        out.append((fields[0], fields[-1].split(".")[0]))
    return out


def _manifest(utterances: list[tuple[str, str]], clips_per_utterance: int = 2) -> pd.DataFrame:
    """Clip rows like prepare's (``s1/bbaf2n/0``, ``s1/bbaf2n/75``...) for ``utterances``."""
    rows = [{"clip_id": f"{spk}/{utt}/{75 * k}", "speaker": spk, "utterance_id": utt,
             "split": None}
            for spk, utt in utterances for k in range(clips_per_utterance)]
    return pd.DataFrame(rows)


def _parts(name: str, clips: pd.DataFrame) -> dict[str, set[tuple[str, str]]]:
    cfg = splits.split_config(PARAMS, name)
    out = {}
    for part in splits.PARTS:
        kept = clips[splits.part_filter(cfg, part, seed=0)(clips)]
        out[part] = set(zip(kept["speaker"], kept["utterance_id"], strict=True))
    return out


def test_seen4_is_the_published_four_speaker_lists() -> None:
    lists = {p: _listed(f"{p}_4.txt") for p in splits.PARTS}
    assert [len(lists[p]) for p in splits.PARTS] == [3586, 199, 200]
    extra = [(s, "zzzz9z") for s in ("s1", "s2", "s4", "s29", "s3")]  # listed nowhere
    clips = _manifest([u for p in splits.PARTS for u in lists[p]] + extra)
    parts = _parts("seen4", clips)
    assert parts["test"] == set(lists["test"])  # exactly the 200 published test utterances
    assert {p: len(parts[p]) for p in parts} == {"train": 3586, "val": 199, "test": 200}
    assert parts["val"] == set(lists["val"]) and parts["train"] == set(lists["train"])
    cfg = splits.split_config(PARAMS, "seen4")
    mask = splits.part_filter(cfg, "test", 0)(clips)
    assert mask.sum() == 400  # both clips of every test utterance
    assert splits.split_speakers(cfg) == ["s1", "s2", "s4", "s29"]
    assert set(splits.assign_parts(clips, cfg, 0)[clips["utterance_id"] == "zzzz9z"]) == {None}


def test_overlap_tests_on_its_val_list() -> None:
    train, val = _listed("overlap_train.txt"), _listed("overlap_val.txt")
    parts = _parts("overlap", _manifest(train + val, clips_per_utterance=1))
    assert {p: len(parts[p]) for p in parts} == {"train": 24407, "val": 8415, "test": 8415}
    assert parts["test"] == parts["val"] == set(val) and not parts["train"] & parts["val"]
    cfg = splits.split_config(PARAMS, "overlap")
    assert len(splits.split_speakers(cfg)) == 33


def test_unseen_speakers_per_part() -> None:
    lists = {p: _listed("unseen_splits.txt", p) for p in splits.PARTS}
    parts = _parts("unseen", _manifest([u for p in splits.PARTS for u in lists[p]], 1))
    assert {p: len(parts[p]) for p in parts} == {"train": 15888, "val": 7000, "test": 9982}
    speakers = {p: {s for s, _ in parts[p]} for p in parts}
    assert speakers["train"] == {f"s{i}" for i in (1, 3, 5, 6, 7, 8, 10, 12, 14, 16, 17, 22,
                                                    24, 26, 28, 32)}
    assert speakers["val"] == {"s9", "s20", "s23", "s27", "s29", "s30", "s34"}
    assert speakers["test"] == {f"s{i}" for i in (2, 4, 11, 13, 15, 18, 19, 25, 31, 33)}
    assert len(splits.split_speakers(splits.split_config(PARAMS, "unseen"))) == 33


def test_seeded_random_split_keeps_its_name_and_sizes() -> None:
    clips = _manifest([(s, f"u{i:03d}") for s in ("s1", "s2", "s4", "s29") for i in range(150)],
                      clips_per_utterance=1)
    cfg = splits.split_config(PARAMS, "seen4_random")
    parts = splits.assign_parts(clips, cfg, seed=0)
    assert parts.value_counts().to_dict() == {"train": 200, "val": 200, "test": 200}  # 50 each
    assert parts.equals(splits.assign_parts(clips, cfg, seed=0))  # deterministic
    assert not parts.equals(splits.assign_parts(clips, cfg, seed=1))


def _lists_cfg(folder: Path, **files: str) -> dict:
    return {"kind": "lists_file", "corpus": "grid", "lists": str(folder), **files}


def test_list_lines_speakers_and_errors(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("s1/video/aaa1.mp4\r\ns2/video/mpg_6000/bbb2\n\n")
    (tmp_path / "b.txt").write_text("val/s1/ccc3\ntest/s1/ddd4\ntest/s2/aaa1\n")
    cfg = _lists_cfg(tmp_path, train_list="a.txt", val_list="b.txt", test_list="b.txt")
    assert splits.list_parts(cfg) == {"train": {"s1/aaa1", "s2/bbb2"}, "val": {"s1/ccc3"},
                                      "test": {"s1/ddd4", "s2/aaa1"}}
    assert splits.list_parts({**cfg, "speakers": ["s2"]})["train"] == {"s2/bbb2"}
    assert splits.split_speakers(cfg) == ["s1", "s2"]
    assert splits.parse_list_line("val/s20/prwo5p") == ("val", "s20", "prwo5p")
    (tmp_path / "leak.txt").write_text("s1/aaa1\n")
    with pytest.raises(ConfigError, match="1 training utterances in val or test"):
        splits.list_parts({**cfg, "test_list": "leak.txt"})
    (tmp_path / "bad.txt").write_text("s1/ok1\nlonely\n")
    with pytest.raises(ConfigError, match=r"bad.txt:2: expected \[part/\]speaker"):
        splits.list_parts({**cfg, "train_list": "bad.txt"})
    with pytest.raises(ConfigError, match="names no train utterances"):
        splits.list_parts({**cfg, "train_list": "b.txt"})
    with pytest.raises(ConfigError, match="does not exist"):
        splits.list_parts({**cfg, "val_list": "missing.txt"})
    with pytest.raises(ConfigError, match="neither a folder of models/split_lists"):
        splits.list_parts(_lists_cfg(tmp_path / "nowhere", train_list="a.txt"))
    assert splits.lists_dir({"lists": "vcagan_grid"}) == LISTS  # shipped with lipflow


def test_split_loaders_read_the_listed_utterances_from_a_store(tmp_path: Path) -> None:
    from lipflow.models.loaders import split_loaders

    listed = {p: [u for s, u in _listed(f"{p}_4.txt") if s == "s1"] for p in splits.PARTS}
    utterances = listed["train"][:3] + listed["val"][:2] + listed["test"][:1] + ["zzzz9z"]
    store, paths = build_store(tmp_path / "features", len(utterances), speaker="s1")
    rows = clip_rows(paths, speaker="s1")
    for row, utt in zip(rows, utterances, strict=True):
        row.update(clip_id=f"s1/{utt}/0", utterance_id=utt, source_path=f"s1/{utt}.mpg")
    write_clip_manifest(rows, manifest_path_for(store))
    params = {**PARAMS, "grid": {**PARAMS["grid"], "features_root": str(tmp_path / "features")},
              "splits": {"one": {**PARAMS["splits"]["seen4"], "speakers": ["s1"]}},
              "train": {**PARAMS["train"], "split": "one"}}
    loaders, fps = split_loaders(params, "gabor", splits.PARTS)
    ids = [set(loader.dataset.clips["utterance_id"]) for loader in loaders]
    assert ids == [set(listed["train"][:3]), set(listed["val"][:2]), {listed["test"][0]}]
    assert fps == 25.0
    with pytest.raises(ConfigError, match="s2.zarr, s4.zarr, s29.zarr"):
        split_loaders({**params, "splits": {"one": PARAMS["splits"]["seen4"]}}, "gabor",
                      ("test",))


def test_vcagan_trains_on_windows_and_scores_whole_clips(tmp_path: Path) -> None:
    """A model whose registry entry trains on windows (VCA-GAN) gets ``window_frames``
    windows every ``window_stride_frames`` in its train part; val and test stay whole
    clips, and the other models read whole clips everywhere."""
    from lipflow.models.loaders import split_loaders

    listed = {p: [u for s, u in _listed(f"{p}_4.txt") if s == "s1"] for p in splits.PARTS}
    utterances = listed["train"][:2] + listed["val"][:1] + listed["test"][:1]
    store, paths = build_store(tmp_path / "features", len(utterances), speaker="s1")
    rows = clip_rows(paths, speaker="s1")
    for row, utt in zip(rows, utterances, strict=True):
        row.update(clip_id=f"s1/{utt}/0", utterance_id=utt, source_path=f"s1/{utt}.mpg")
    write_clip_manifest(rows, manifest_path_for(store))
    train = {**PARAMS["train"], "split": "one",
             "vcagan": {**PARAMS["train"]["vcagan"], "window_frames": 40,
                        "window_stride_frames": 20}}
    params = {**PARAMS, "grid": {**PARAMS["grid"], "features_root": str(tmp_path / "features")},
              "splits": {"one": {**PARAMS["splits"]["seen4"], "speakers": ["s1"]}},
              "train": train}
    (train_loader, val_loader, test_loader), _ = split_loaders(params, "vcagan", splits.PARTS)
    clip_frames = int(rows[0]["valid_frames"])
    starts = list(range(0, clip_frames - 40 + 1, 20))
    assert len(train_loader.dataset) == 2 * len(starts) > 2
    item = train_loader.dataset[1]
    assert item["video"].shape[0] == 40 and int(item["start_frame"]) == starts[1]
    assert val_loader.dataset.window_frames is None and test_loader.dataset.window_frames is None
    (gabor_train,), _ = split_loaders(params, "gabor", ("train",))
    assert gabor_train.dataset.window_frames is None
