"""The per-image manifest: which images exist, where they came from and how to regenerate them.

One JSONL file per (source, category) under ``<work>/manifest/`` (single writer per file, see
``records.py``). A record is only appended after its image file was written atomically, so a record
always describes a complete image.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

from xpaste_mm.datasets.pool_index import SOURCES

from .errors import PoolBuilderError
from .layout import WorkDir
from .records import append_jsonl, latest_by_key, read_jsonl

IMAGE_SOURCES = SOURCES  # generated / retrieved / own


@dataclass(frozen=True)
class ImageRecord:
    """One candidate image.

    ``key`` is ``"<safe name>/<stem>"`` and unique in the work dir; ``image`` is relative to the
    work dir when inside it. ``seed``/``prompt``/``index``/``generator`` are set for generated
    images: ``generator`` is the pipeline id, and generating ``prompt`` with ``seed`` (noise drawn on
    the CPU) at the recorded settings reproduces the image.
    """

    key: str
    category_id: int
    name: str
    safe_name: str
    stem: str
    image: str
    source: str
    seed: int | None = None
    prompt: str | None = None
    index: int | None = None
    generator: str | None = None
    origin: str | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict, where: str = '') -> ImageRecord:
        names = {f.name for f in fields(cls)}
        missing = [n for n in ('key', 'category_id', 'name', 'safe_name', 'stem', 'image', 'source')
                   if n not in data]
        if missing:
            raise PoolBuilderError(f'{where}: manifest record lacks {missing}: {data!r:.200}')
        return cls(**{k: v for k, v in data.items() if k in names})


def append_records(work: WorkDir, source: str, safe_name: str, records: Iterable[ImageRecord]) -> None:
    """Durably append records of one category and source."""
    append_jsonl(work.manifest_file(source, safe_name), (r.to_json() for r in records))


def read_category_manifest(work: WorkDir, safe_name: str,
                           sources: Iterable[str] = IMAGE_SOURCES) -> list[ImageRecord]:
    """All image records of one category (every source), sorted by key, de-duplicated."""
    records: dict[str, ImageRecord] = {}
    for source in sources:
        path = work.manifest_file(source, safe_name)
        for key, data in latest_by_key(read_jsonl(path)).items():
            records[key] = ImageRecord.from_json(data, where=str(path))
    return [records[k] for k in sorted(records)]


def read_manifest(work: WorkDir) -> dict[str, list[ImageRecord]]:
    """``{safe name: records}`` for every category that has a manifest file."""
    safe_names = sorted({p.stem for source in IMAGE_SOURCES
                         for p in (work.manifest_dir / source).glob('*.jsonl')})
    return {name: read_category_manifest(work, name) for name in safe_names}
