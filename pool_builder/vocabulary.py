"""The category vocabulary: dataset ids, 0-based labels, names and filesystem-safe folder names.

A vocabulary is read from an LVIS/COCO annotation JSON (its ``categories``), a JSON list of category
dicts or names, a plain text file with one name per line, or the ``vocabulary.json`` that the pool
builder records in its work directory (which also fixes the folder names). Labels are the rank of
the dataset id among all ids, which is how mmdet's LVIS/COCO datasets number their classes and how
X-Paste keys its pool JSON.
"""
from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import VocabularyError

VOCABULARY_VERSION = 1
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|\s]+')
_WINDOWS_RESERVED = {'con', 'prn', 'aux', 'nul', *(f'com{i}' for i in range(1, 10)),
                     *(f'lpt{i}' for i in range(1, 10))}
MAX_FOLDER_BYTES = 120


@dataclass(frozen=True)
class Category:
    """One category. ``id`` is the dataset id, ``label`` the 0-based contiguous class index."""

    id: int
    label: int
    name: str
    safe_name: str
    synonyms: tuple[str, ...] = ()
    definition: str = ''

    @property
    def display_name(self) -> str:
        """The name as prompts use it: underscores become spaces (X-Paste's rule)."""
        return display_name(self.name)


def display_name(name: str) -> str:
    """``name`` with underscores replaced by spaces; parentheses and case are kept."""
    return name.replace('_', ' ')


def safe_folder_name(name: str) -> str:
    """A folder name for ``name`` that is valid on Linux, macOS and Windows.

    Path separators, whitespace, control and reserved characters become ``_``; leading/trailing dots
    are removed; Unicode letters and parentheses are kept (NFC-normalised). Names longer than
    ``MAX_FOLDER_BYTES`` UTF-8 bytes are shortened and suffixed with a hash, so they stay distinct.
    """
    text = _UNSAFE_CHARS.sub('_', unicodedata.normalize('NFC', str(name))).strip('.')
    if not text:
        text = 'category'
    if text.lower().split('.')[0] in _WINDOWS_RESERVED:
        text += '_'
    if len(text.encode('utf-8')) > MAX_FOLDER_BYTES:
        digest = hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]
        encoded = text.encode('utf-8')[:MAX_FOLDER_BYTES - 9]
        text = encoded.decode('utf-8', errors='ignore') + '-' + digest
    return text


@dataclass
class Vocabulary:
    """All categories of a dataset, sorted by id; ``source`` is the file it was read from."""

    categories: tuple[Category, ...]
    source: str = ''
    _by_id: dict[int, Category] = field(init=False, repr=False)
    _by_folder: dict[str, Category] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.categories = tuple(sorted(self.categories, key=lambda c: c.id))
        self._by_id = {c.id: c for c in self.categories}
        # Lower priority first so that safe names, then lower ids, win on clashes.
        self._by_folder = {}
        for cat in reversed(self.categories):
            for key in (cat.name, cat.name.replace(' ', '_'), display_name(cat.name)):
                self._by_folder[_folder_key(key)] = cat
        for cat in reversed(self.categories):
            self._by_folder[_folder_key(cat.safe_name)] = cat

    def __len__(self) -> int:
        return len(self.categories)

    def __iter__(self) -> Iterator[Category]:
        return iter(self.categories)

    @property
    def ids(self) -> tuple[int, ...]:
        """Dataset ids in label order (``ids[label] == id``)."""
        return tuple(c.id for c in self.categories)

    def by_id(self, category_id: int) -> Category:
        try:
            return self._by_id[int(category_id)]
        except KeyError as exc:
            raise VocabularyError(f'category id {category_id} is not in the vocabulary '
                                  f'{self.source or "(in memory)"}') from exc

    def subset(self, ids: Iterable[int] | None) -> list[Category]:
        """The categories with the given ids (all when ``ids`` is None), in id order."""
        if ids is None:
            return list(self.categories)
        wanted = {int(i) for i in ids}
        unknown = sorted(wanted - set(self._by_id))
        if unknown:
            raise VocabularyError(f'category ids {unknown} are not in the vocabulary {self.source}')
        return [c for c in self.categories if c.id in wanted]

    def match_folder(self, folder: str) -> Category | None:
        """The category a user folder belongs to: its safe name, raw name, or the name with spaces
        and underscores exchanged (retrieval crawls often wrote one or the other); None if none."""
        return self._by_folder.get(_folder_key(folder))

    def to_json(self) -> dict:
        return dict(version=VOCABULARY_VERSION, source=self.source, categories=[
            dict(id=c.id, label=c.label, name=c.name, safe_name=c.safe_name,
                 synonyms=list(c.synonyms), definition=c.definition) for c in self.categories])

    def save(self, path: str | os.PathLike) -> Path:
        """Record the vocabulary (with its folder-name mapping) atomically."""
        from xpaste_mm.utils.io import atomic_write_json

        return atomic_write_json(path, self.to_json(), indent=1)

    @classmethod
    def from_entries(cls, entries: Sequence[dict], source: str = '') -> Vocabulary:
        """Build from dicts with ``id`` and ``name`` (optional ``synonyms``, ``def``/``definition``,
        ``safe_name``). Folder-name collisions (also case-insensitive ones) get an ``__<id>``
        suffix on every category after the first, in id order."""
        seen_ids: set[int] = set()
        rows = []
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict) or 'id' not in entry or 'name' not in entry:
                raise VocabularyError(f'{source}: category #{n} must be an object with "id" and "name", '
                                      f'got {entry!r:.120}')
            try:
                cat_id = int(entry['id'])
            except (TypeError, ValueError) as exc:
                raise VocabularyError(f'{source}: category #{n} has a non-integer id '
                                      f'{entry["id"]!r}') from exc
            name = entry['name']
            if not isinstance(name, str) or not name.strip():
                raise VocabularyError(f'{source}: category id {cat_id} has an empty or non-string name')
            if cat_id in seen_ids:
                raise VocabularyError(f'{source}: category id {cat_id} appears more than once')
            seen_ids.add(cat_id)
            synonyms = entry.get('synonyms') or ()
            if isinstance(synonyms, str) or not all(isinstance(s, str) for s in synonyms):
                raise VocabularyError(f'{source}: "synonyms" of category {cat_id} must be a list of '
                                      'strings')
            rows.append((cat_id, name, tuple(synonyms),
                         str(entry.get('definition', entry.get('def', '')) or ''),
                         entry.get('safe_name')))
        if not rows:
            raise VocabularyError(f'{source}: no categories found')
        rows.sort(key=lambda r: r[0])
        used: set[str] = set()
        categories = []
        for label, (cat_id, name, synonyms, definition, recorded) in enumerate(rows):
            if recorded is not None:
                if recorded != safe_folder_name(recorded) or recorded.casefold() in used:
                    raise VocabularyError(f'{source}: recorded safe_name {recorded!r} of category '
                                          f'{cat_id} is not a unique safe folder name')
                safe = recorded
            else:
                safe = safe_folder_name(name)
                if safe.casefold() in used:
                    safe = f'{safe}__{cat_id}'
            used.add(safe.casefold())
            categories.append(Category(cat_id, label, name, safe, synonyms, definition))
        return cls(tuple(categories), source=source)


def _folder_key(name: str) -> str:
    return unicodedata.normalize('NFC', name).casefold()


def load_vocabulary(path: str | os.PathLike) -> Vocabulary:
    """Read a vocabulary from an LVIS/COCO annotation JSON, a JSON list (category dicts or names),
    a recorded ``vocabulary.json``, or a text file with one category name per line (ids 1..N in
    line order; blank lines and lines starting with ``#`` are skipped). Reading and the id checks
    are :func:`xpaste_mm.categories.read_category_list`'s (imported here: importing ``xpaste_mm``
    registers the mmdet plugin, which argument parsing must not pay for)."""
    from xpaste_mm.categories import CategoryError, read_category_list

    try:
        entries = read_category_list(path)
    except CategoryError as exc:
        raise VocabularyError(str(exc)) from exc
    return Vocabulary.from_entries(entries, source=str(Path(path)))
