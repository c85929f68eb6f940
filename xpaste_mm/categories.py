"""Category lists and the label rule, in one place.

Every file that lists categories is read here, with the same checks and messages:

* LVIS/COCO annotation files (their top-level ``categories``, found without parsing the whole file);
* our ``category_stats.json`` (``{"categories": [{"id", "image_count", "size_mean", ...}]}``);
* X-Paste's ``lvis_v1_train_cat_info.json`` (a list of category dicts) and ``area_mean_std2.json``
  (``{"<category id>": [mean, std]}``);
* pool vocabularies: a JSON list of category dicts or of names, a recorded ``vocabulary.json``, or a
  text file with one name per line (ids 1..N in line order).

The label rule: the 0-based training label of a category is the rank of its id among the dataset's
sorted category ids (what mmdet's ``LVISV1Dataset``/``CocoDataset`` give for files whose categories are
sorted by id, and how X-Paste keys its pool JSON). Category ids are never repeated in a file; where
mmdet would number labels in file order, the file must list them sorted by id.

This module imports neither torch nor mmdet (``pool_builder`` uses it); errors are
:class:`CategoryError` (a ``ValueError``) or ``FileNotFoundError``, and name the file and field.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

FREQUENCY_GROUPS = ('r', 'c', 'f')  # LVIS frequency groups: rare, common, frequent
_TAIL_BYTES = 32 * 2**20
_CHUNK_BYTES = 64 * 2**20


class CategoryError(ValueError):
    """A category list is malformed (the message names the file, the field and the fix)."""


# ---------------------------------------------------------------------------- the label rule
def sorted_ids(category_ids: Iterable[int], source: str = 'category_ids') -> list[int]:
    """The ids in label order (ascending); duplicated ids raise :class:`CategoryError`."""
    ids = [int(c) for c in category_ids]
    _refuse_duplicates(ids, source)
    return sorted(ids)


def label_map(category_ids: Iterable[int], source: str = 'category_ids') -> dict[int, int]:
    """``{category id: label}`` with label = rank of the id among the sorted ids."""
    return {cat: label for label, cat in enumerate(sorted_ids(category_ids, source))}


def in_label_order(values: Mapping[int, Any]) -> list:
    """The values of a ``{category id: value}`` mapping, ordered by label (ascending id)."""
    return [values[cat] for cat in sorted(values)]


def check_unique_ids(categories: Sequence[Mapping], source: str | os.PathLike) -> list[int]:
    """The integer ids of ``categories`` (file order); refuses a missing, non-integer or repeated id."""
    ids = []
    for n, cat in enumerate(categories):
        if not isinstance(cat, Mapping) or 'id' not in cat:
            raise CategoryError(f'{source}: category #{n} must be an object with an "id", got {cat!r:.120}')
        try:
            ids.append(int(cat['id']))
        except (TypeError, ValueError) as exc:
            raise CategoryError(f'{source}: category #{n} has a non-integer id {cat["id"]!r}') from exc
    _refuse_duplicates(ids, source)
    return ids


def check_sorted_ids(categories: Sequence[Mapping], source: str | os.PathLike) -> None:
    """Refuse a category list that is not sorted by id (checked for duplicates first).

    mmdet numbers labels in the file's category order, while the pool, the statistics and the losses
    use ascending ids: the two agree only when the file lists its categories sorted by id (LVIS and
    COCO files do).
    """
    ids = check_unique_ids(categories, source)
    if ids != sorted(ids):
        first = next(b for a, b in zip(ids, ids[1:]) if b < a)
        raise CategoryError(f'{source}: "categories" is not sorted by id (first out of order: {first}); '
                            'mmdet would number labels in file order while the pool and statistics use '
                            'ascending ids, so pasted instances would get wrong labels. Sort the list by '
                            '"id".')


def _refuse_duplicates(ids: Sequence[int], source: str | os.PathLike) -> None:
    repeated = sorted(cat for cat, count in Counter(ids).items() if count > 1)
    if repeated:
        raise CategoryError(f'{source}: duplicate category ids {repeated[:10]}: each appears more than once, '
                            'but every category needs its own id (labels are the rank of the sorted ids). '
                            'Remove or renumber the repeated entries.')


# ---------------------------------------------------------------------------- readers
def read_json(path: str | os.PathLike, what: str = 'category file') -> Any:
    """Parse a JSON file; a missing file or invalid JSON gets a message naming ``path``."""
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f'{what} {path} does not exist') from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CategoryError(f'{path}: not valid JSON ({exc})') from exc


def read_ann_categories(ann_file: str | os.PathLike) -> list[dict]:
    """The ``categories`` of a COCO/LVIS annotation JSON (file order, ids checked unique).

    Only that array is decoded: LVIS/COCO files put it near the end, so the last 32 MiB are searched
    first, then the whole file in 64 MiB chunks (a 1 GB LVIS file costs well under a second). Falls
    back to a full ``json.load`` when no valid array is found.
    """
    path = Path(ann_file)
    if not path.is_file():
        raise FileNotFoundError(f'annotation file {path} does not exist')
    categories = _scan_for_categories(path)
    if categories is None:
        data = read_json(path, 'annotation file')
        if not isinstance(data, dict) or not isinstance(data.get('categories'), list):
            raise CategoryError(f'{path}: no top-level "categories" list (expected COCO/LVIS format)')
        categories = data['categories']
    check_unique_ids(categories, path)
    return categories


def read_category_list(path: str | os.PathLike) -> list[dict]:
    """Categories of any category file: an annotation file or stats file (``{"categories": [...]}``),
    a JSON list of category dicts (X-Paste ``cat_info``, vocabularies) or of names (ids 1..N), or a
    text file with one name per line (ids 1..N; blank lines and ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'category file {path} does not exist')
    if path.suffix.lower() != '.json':
        names = [line.strip() for line in path.read_text(encoding='utf-8').splitlines()]
        names = [n for n in names if n and not n.startswith('#')]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise CategoryError(f'{path}: duplicate category names {repeated}')
        return [dict(id=i + 1, name=n) for i, n in enumerate(names)]
    data = read_json(path)
    if isinstance(data, dict):
        if 'categories' not in data:
            raise CategoryError(f'{path}: a JSON object needs a "categories" list (LVIS/COCO annotation '
                                'format or category_stats.json)')
        data = data['categories']
    if not isinstance(data, list):
        raise CategoryError(f'{path}: expected a list of categories')
    if data and all(isinstance(x, str) for x in data):
        return [dict(id=i + 1, name=n) for i, n in enumerate(data)]
    check_unique_ids(data, path)
    return data


def load_class_names(ann_file: str | os.PathLike) -> tuple[str, ...]:
    """Category names of an annotation file in label order (ascending id)."""
    categories = read_ann_categories(ann_file)
    return tuple(c.get('name', str(c['id'])) for c in sorted(categories, key=lambda c: int(c['id'])))


def load_size_prior(path: str | os.PathLike) -> dict[int, tuple[float, float]]:
    """``{category id: (mean, std)}`` of relative size (sqrt(box area / image area)), from our
    ``category_stats.json`` or X-Paste's ``area_mean_std2.json`` (``{"<id>": [mean, std]}``)."""
    data = read_json(path, 'statistics file')
    if isinstance(data, dict) and 'categories' in data:
        categories = data['categories']
        check_unique_ids(categories, path)
        try:
            return {int(c['id']): (float(c['size_mean']), float(c['size_std'])) for c in categories}
        except (KeyError, TypeError, ValueError) as exc:
            raise CategoryError(f'{path}: every category needs "size_mean" and "size_std" ({exc}); '
                                'write the file with `xpaste-pool stats`') from exc
    if isinstance(data, dict):
        try:
            return {int(k): (float(v[0]), float(v[1])) for k, v in data.items()}
        except (ValueError, TypeError, IndexError) as exc:
            raise CategoryError(f'{path}: expected {{"<category id>": [mean, std]}} entries ({exc})') from exc
    raise CategoryError(f'{path}: not a category-stats file nor an area_mean_std JSON object')


def _category_dicts(path: str | os.PathLike, what: str) -> tuple[list[dict], list[int]] | None:
    """(categories, their ids) of a JSON list of category dicts or an object with ``categories`` (ids
    checked unique); ``None`` when the file holds neither."""
    data = read_json(path, what)
    categories = data.get('categories') if isinstance(data, dict) else data
    if not isinstance(categories, list):
        return None
    return categories, check_unique_ids(categories, path)


def load_image_counts(path: str | os.PathLike) -> dict[int, int]:
    """``{category id: image_count}`` from our stats file, X-Paste's ``*_cat_info.json`` (a list of
    category dicts) or an LVIS annotation file (its ``categories``)."""
    found = _category_dicts(path, 'statistics/annotation file')
    if found is None:
        raise CategoryError(f'{path}: expected a list of categories or an object with "categories"')
    categories, ids = found
    try:
        return {cat: int(c['image_count']) for cat, c in zip(ids, categories)}
    except (KeyError, TypeError, ValueError) as exc:
        raise CategoryError(f'{path}: every category needs "id" and "image_count" ({exc})') from exc


def load_frequencies(path: str | os.PathLike) -> dict[int, str]:
    """``{category id: LVIS frequency group}`` of a stats or annotation file (empty when it has none,
    e.g. X-Paste's ``area_mean_std2.json``)."""
    found = _category_dicts(path, 'statistics file')
    if found is None:
        return {}
    categories, ids = found
    return {cat: c['frequency'] for cat, c in zip(ids, categories) if c.get('frequency')}


def missing_from_stats(stats_ids: Iterable[int], dataset_ids: Iterable[int],
                       stats_file: str | os.PathLike, dataset_source: str) -> list[int]:
    """Dataset category ids the statistics file lacks (sorted).

    Refuses (:class:`CategoryError`) a statistics file that shares no category with the dataset: it
    was computed for another dataset, and every category would silently get a foreign size prior.
    """
    stats_ids, dataset_ids = {int(c) for c in stats_ids}, sorted({int(c) for c in dataset_ids})
    missing = [c for c in dataset_ids if c not in stats_ids]
    if dataset_ids and len(missing) == len(dataset_ids):
        raise CategoryError(
            f'{stats_file}: shares no category id with the dataset ({dataset_source}: ids '
            f'{dataset_ids[:5]}{"..." if len(dataset_ids) > 5 else ""}; the statistics file has '
            f'{len(stats_ids)} ids, e.g. {sorted(stats_ids)[:5]}). It was computed for another dataset: '
            'run `xpaste-pool stats --ann-file <the training annotations>` and use its output.')
    return missing


# ---------------------------------------------------------------------------- fast array scan
def _scan_for_categories(path: Path) -> list[dict] | None:
    """The ``"categories": [...]`` array of a large JSON file, decoded alone; ``None`` if not found."""
    key = b'"categories"'
    size = path.stat().st_size
    with open(path, 'rb') as f:
        tail_start = max(0, size - _TAIL_BYTES)
        f.seek(tail_start)
        hit = f.read().rfind(key)
        candidates = [tail_start + hit] if hit >= 0 else []
        if not candidates:
            f.seek(0)
            offset, carry = 0, b''
            while chunk := f.read(_CHUNK_BYTES):
                found = (carry + chunk).find(key)
                if found >= 0:
                    candidates.append(offset - len(carry) + found)
                    break
                carry = chunk[-len(key):]
                offset += len(chunk)
        for start in candidates:
            categories = _decode_array_after(f, start + len(key))
            if categories is not None:
                return categories
    return None


def _decode_array_after(f, position: int) -> list[dict] | None:
    """Decode the JSON value following ``: `` at ``position``; ``None`` unless it is a category list."""
    decoder = json.JSONDecoder()
    read_size = 2**20
    while True:
        f.seek(position)
        raw = f.read(read_size)
        text = raw.decode('utf-8', errors='ignore').lstrip()
        if not text.startswith(':'):
            return None
        body = text[1:].lstrip()
        try:
            value, _ = decoder.raw_decode(body)
        except json.JSONDecodeError:
            if len(raw) < read_size:
                return None
            read_size *= 4
            continue
        if isinstance(value, list) and all(isinstance(c, dict) and 'id' in c for c in value):
            return value
        return None
