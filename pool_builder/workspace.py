"""Opening a work directory together with its recorded vocabulary."""
from __future__ import annotations

import os

from .errors import WorkDirError
from .layout import WorkDir
from .vocabulary import Vocabulary, load_vocabulary


def open_vocabulary(work: WorkDir, path: str | os.PathLike | None = None) -> Vocabulary:
    """The vocabulary of ``work``.

    Without ``path`` the one recorded in ``<work>/vocabulary.json`` is used. With ``path`` the file
    is read and recorded; if the work dir already records a different vocabulary (other ids, names
    or folder names) a :class:`WorkDirError` is raised instead of mixing two runs.
    """
    check_vocabulary_source(work, path)
    recorded = load_vocabulary(work.vocabulary_file) if work.vocabulary_file.is_file() else None
    if path is None:
        return recorded
    vocabulary = load_vocabulary(path)
    if recorded is not None:
        if _signature(recorded) != _signature(vocabulary):
            raise WorkDirError(f'{work.root} was built with the vocabulary of {recorded.source}, which '
                               f'differs from {path} (ids, names or folder names); use another work '
                               'dir or the same category file')
        return recorded
    work.root.mkdir(parents=True, exist_ok=True)
    vocabulary.save(work.vocabulary_file)
    return vocabulary


def check_vocabulary_source(work: WorkDir, path: str | os.PathLike | None) -> None:
    """Raise :class:`WorkDirError` when there is neither a category file nor a recorded vocabulary
    (a cheap check that runs before anything is written, e.g. for a mistyped work dir)."""
    if path is None and not work.vocabulary_file.is_file():
        raise WorkDirError(f'{work.root} has no recorded vocabulary ({work.vocabulary_file.name}); '
                           'pass the category file (--vocab)')


def _signature(vocabulary: Vocabulary) -> list[tuple[int, str, str]]:
    return [(c.id, c.name, c.safe_name) for c in vocabulary]
