"""Text prompts: generation prompts per category and the CLIP scoring text.

Image ``k`` of a category uses prompt ``k mod P`` of its ``P`` prompts, so many prompts per category
spread evenly over the generated images.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from .errors import VocabularyError
from .options import DEFAULT_GENERATION_TEMPLATE, DEFAULT_SCORE_TEMPLATE, PromptOptions
from .vocabulary import Category, Vocabulary, display_name

__all__ = ['DEFAULT_GENERATION_TEMPLATE', 'DEFAULT_SCORE_TEMPLATE', 'PromptOptions', 'build_prompts',
           'load_prompt_file', 'prompt_for_index', 'score_text']


def score_text(category: Category, template: str = DEFAULT_SCORE_TEMPLATE) -> str:
    """The CLIP scoring text of a category ("a photo of <name>")."""
    return template.format(name=category.display_name)


def load_prompt_file(path: str | os.PathLike, vocabulary: Vocabulary) -> dict[int, list[str]]:
    """User prompts per category id.

    JSON: ``{"<id, name or folder name>": ["prompt", ...] or "prompt"}``. Text: one
    ``<id, name or folder name><TAB><prompt>`` per line (``#`` comments and blank lines skipped).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'prompt file {path} does not exist')
    text = path.read_text(encoding='utf-8')
    pairs: list[tuple[str, str]] = []
    if path.suffix.lower() == '.json':
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VocabularyError(f'{path}: not valid JSON ({exc})') from exc
        if not isinstance(data, dict):
            raise VocabularyError(f'{path}: expected an object {{"<category>": ["prompt", ...]}}')
        for key, value in data.items():
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
                raise VocabularyError(f'{path}: prompts of {key!r} must be a non-empty string or a list '
                                      'of them')
            pairs.extend((key, v) for v in values)
    else:
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith('#'):
                continue
            key, sep, prompt = line.partition('\t')
            if not sep or not prompt.strip():
                raise VocabularyError(f'{path}:{line_no}: expected "<category><TAB><prompt>"')
            pairs.append((key.strip(), prompt.strip()))
    prompts: dict[int, list[str]] = {}
    unknown = []
    for key, prompt in pairs:
        category = _resolve_category(key, vocabulary)
        if category is None:
            unknown.append(key)
            continue
        prompts.setdefault(category.id, []).append(prompt.strip())
    if unknown:
        raise VocabularyError(f'{path}: unknown categories {sorted(set(unknown))[:10]} (use a category '
                              f'id, name or folder name of {vocabulary.source})')
    return prompts


def build_prompts(vocabulary: Vocabulary, options: PromptOptions = PromptOptions(),
                  categories: Sequence[Category] | None = None) -> dict[int, tuple[str, ...]]:
    """Generation prompts of every category (duplicates removed, order kept)."""
    user = load_prompt_file(options.prompt_file, vocabulary) if options.prompt_file else {}
    result = {}
    for category in categories if categories is not None else vocabulary.categories:
        names = [category.name] + (list(category.synonyms) if options.synonyms else [])
        prompts = []
        for template in options.templates:
            for name in names:
                prompt = template.format(name=display_name(name))
                prompts.append(prompt)
                if options.definitions and category.definition:
                    prompts.append(f'{prompt}, {category.definition}')
        prompts.extend(user.get(category.id, ()))
        prompts = list(dict.fromkeys(prompts))
        if not prompts:
            raise VocabularyError(f'category {category.id} ({category.name!r}) has no prompt: no template '
                                  'is set and the prompt file has no entry for it')
        result[category.id] = tuple(prompts)
    return result


def prompt_for_index(prompts: Sequence[str], index: int) -> str:
    """The prompt of image ``index`` (cycles through the category's prompts)."""
    return prompts[index % len(prompts)]


def _resolve_category(key: str, vocabulary: Vocabulary) -> Category | None:
    if key.strip().lstrip('-').isdigit():
        try:
            return vocabulary.by_id(int(key))
        except VocabularyError:
            return None
    return vocabulary.match_folder(key)
