"""Video-id lists: the committed Lip2Wav lists and user lists of ids or YouTube URLs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.fetch.video_lists import (
    LIP2WAV_SPEAKERS,
    LIP2WAV_SPLITS,
    LISTS_DIR,
    lip2wav_video_ids,
    read_id_list,
    read_user_list,
    video_id_from_text,
)

INJECTED_LINES = [
    "--exec=rm -rf /",
    "../../x",
    "https://evil.example.com/watch?v=abcdefghijk",
    "abcdefghijkl",  # 12 characters
]


def sources_table() -> dict[str, dict[str, int]]:
    """The per-speaker counts as published in SOURCES.md (the table is the reference)."""
    text = (LISTS_DIR / "SOURCES.md").read_text(encoding="utf-8")
    counts = {}
    for match in re.finditer(
        r"^\|\s*(\w+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|$", text, re.M
    ):
        speaker, *numbers = match.groups()
        counts[speaker] = dict(zip(LIP2WAV_SPLITS, map(int, numbers), strict=True))
    return counts


def test_sources_table_covers_every_speaker():
    table = sources_table()
    assert sorted(table) == sorted(LIP2WAV_SPEAKERS)
    assert table["chem"] == {"train": 313, "val": 17, "test": 16}


@pytest.mark.parametrize("speaker", LIP2WAV_SPEAKERS)
def test_committed_lists_parse_to_the_published_counts(speaker):
    expected = sources_table()[speaker]
    for split in LIP2WAV_SPLITS:
        pairs = lip2wav_video_ids(speaker, split)
        assert len(pairs) == expected[split], (speaker, split)
        assert {s for _, s in pairs} == {split}
        assert all(len(v) == 11 for v, _ in pairs)
    everything = lip2wav_video_ids(speaker, "all")
    assert len(everything) == sum(expected.values())
    assert [s for _, s in everything] == sorted(
        (s for _, s in everything), key=LIP2WAV_SPLITS.index
    )


def test_list_quirks_are_present_and_handled():
    chess_test = (LISTS_DIR / "chess" / "test.txt").read_text(encoding="utf-8")
    assert "" in [ln.strip() for ln in chess_test.splitlines()]  # the empty line
    for name in ("val.txt", "test.txt"):
        raw = (LISTS_DIR / "eh" / name).read_bytes()
        assert not raw.endswith(b"\n")  # no final newline
        last_id = raw.decode().split()[-1]
        assert lip2wav_video_ids("eh", name.removesuffix(".txt"))[-1][0] == last_id
    assert [v for v, _ in lip2wav_video_ids("chess", "test")] == chess_test.split()


def test_limit_takes_the_first_videos():
    first_two = lip2wav_video_ids("chem", "test", limit=2)
    assert first_two == lip2wav_video_ids("chem", "test")[:2]
    assert lip2wav_video_ids("chem", "test", limit=0) == lip2wav_video_ids("chem", "test")
    with pytest.raises(ConfigError, match="limit"):
        lip2wav_video_ids("chem", "test", limit=-1)


def test_unknown_speaker_and_split_name_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        lip2wav_video_ids("physics")
    assert "physics" in str(err.value)
    assert all(s in str(err.value) for s in LIP2WAV_SPEAKERS)
    with pytest.raises(ConfigError, match="train, val, test, all"):
        lip2wav_video_ids("chem", "dev")


@pytest.mark.parametrize("bad", INJECTED_LINES)
@pytest.mark.parametrize("reader", [read_id_list, read_user_list])
def test_injected_line_is_rejected_with_file_and_line(tmp_path: Path, reader, bad):
    path = tmp_path / "list.txt"
    path.write_text(f"wrgnaV-cVrs\n\n{bad}\nQL6TFnaXvMg\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        reader(path)
    message = str(err.value)
    assert f"{path}:3:" in message
    assert bad[:20] in message


def test_bom_crlf_and_duplicates(tmp_path: Path):
    path = tmp_path / "ids.txt"
    path.write_bytes(b"\xef\xbb\xbfwrgnaV-cVrs\r\n  QL6TFnaXvMg  \r\n\r\nwrgnaV-cVrs")
    assert read_id_list(path) == ["wrgnaV-cVrs", "QL6TFnaXvMg"]


def test_missing_list_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_user_list(tmp_path / "nope.txt")


URL_FORMS = [
    "wrgnaV-cVrs",
    "https://www.youtube.com/watch?v=wrgnaV-cVrs",
    "https://www.youtube.com/watch?v=wrgnaV-cVrs&t=42s&list=PL123",
    "https://youtube.com/watch?feature=share&v=wrgnaV-cVrs",
    "http://m.youtube.com/watch?v=wrgnaV-cVrs",
    "www.youtube.com/watch?v=wrgnaV-cVrs",
    "https://youtu.be/wrgnaV-cVrs",
    "https://youtu.be/wrgnaV-cVrs?si=AbCdEf&t=3",
    "https://www.youtube.com/shorts/wrgnaV-cVrs",
    "https://m.youtube.com/shorts/wrgnaV-cVrs?feature=share",
    "https://www.youtube.com/embed/wrgnaV-cVrs",
]


@pytest.mark.parametrize("text", URL_FORMS)
def test_youtube_url_forms_give_the_id(text):
    assert video_id_from_text(text) == "wrgnaV-cVrs"


@pytest.mark.parametrize(
    "text",
    [
        "https://evil.example.com/watch?v=wrgnaV-cVrs",
        "https://youtube.com.evil.com/watch?v=wrgnaV-cVrs",
        "https://user@youtube.com/watch?v=wrgnaV-cVrs",
        "https://www.youtube.com:8443/watch?v=wrgnaV-cVrs",
        "https://www.youtube.com/watch?v=wrgnaV-cVr",  # 10 characters
        "https://www.youtube.com/watch?v=wrgnaV-cVrs&v=QL6TFnaXvMg",
        "https://www.youtube.com/playlist?list=PL123",
        "https://youtu.be/wrgnaV-cVrs/extra",
        "ftp://youtube.com/watch?v=wrgnaV-cVrs",
        "javascript:alert(1)",
        "http://[::1",
        "wrgnaV cVrs",
    ],
)
def test_other_hosts_and_malformed_urls_name_no_video(text):
    assert video_id_from_text(text) is None


def test_user_list_mixes_ids_urls_and_comments(tmp_path: Path):
    path = tmp_path / "mine.txt"
    path.write_text(
        "# my speaker\n"
        + "\n".join(URL_FORMS[1:4])
        + "\nhttps://youtu.be/QL6TFnaXvMg\nvC2v1n-bZQU",  # no final newline
        encoding="utf-8",
    )
    assert read_user_list(path) == ["wrgnaV-cVrs", "QL6TFnaXvMg", "vC2v1n-bZQU"]


def test_user_list_without_videos_is_an_error(tmp_path: Path):
    path = tmp_path / "empty.txt"
    path.write_text("# nothing yet\n\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="names no videos"):
        read_user_list(path)
