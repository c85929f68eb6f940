"""pool_builder vocabulary, folder names, prompts and the work-dir vocabulary record."""
import json

import pytest

from pool_builder.errors import VocabularyError, WorkDirError
from pool_builder.layout import WorkDir
from pool_builder.prompts import PromptOptions, build_prompts, prompt_for_index, score_text
from pool_builder.vocabulary import load_vocabulary, safe_folder_name
from pool_builder.workspace import open_vocabulary


def test_lvis_file_gives_ids_labels_and_safe_folders(synthetic_lvis):
    vocab = load_vocabulary(synthetic_lvis.train_ann)
    data = json.loads(synthetic_lvis.train_ann.read_text())
    assert vocab.ids == tuple(sorted(c['id'] for c in data['categories']))
    assert [c.label for c in vocab] == list(range(len(vocab)))
    by_name = {c.name: c for c in vocab}
    assert by_name['AC/DC_adapter'].safe_name == 'AC_DC_adapter'
    assert by_name['bat_(animal)'].safe_name == 'bat_(animal)'
    assert (by_name['monitor_(computer_equipment) computer_monitor'].safe_name
            == 'monitor_(computer_equipment)_computer_monitor')
    assert by_name['crème_brûlée'].safe_name == 'crème_brûlée'
    assert by_name['bat_(animal)'].synonyms  # LVIS synonyms are kept
    assert by_name['bat_(animal)'].definition


@pytest.mark.parametrize('name, expected', [
    ('a/b\\c', 'a_b_c'), ('  lead and trail ', '_lead_and_trail_'), ('..', 'category'),
    ('.hidden', 'hidden'), ('CON', 'CON_'), ('what?*<>|"', 'what_'), ('tab\tand\nnewline', 'tab_and_newline'),
    ('Crème', 'Crème'),
])
def test_safe_folder_name(name, expected):
    assert safe_folder_name(name) == expected


def test_long_names_are_shortened_but_stay_distinct():
    a, b = safe_folder_name('x' * 300 + 'a'), safe_folder_name('x' * 300 + 'b')
    assert a != b and len(a.encode()) <= 120 and len(b.encode()) <= 120


def test_folder_collisions_get_id_suffix_and_folders_match_back(tmp_path):
    path = tmp_path / 'cats.json'
    path.write_text(json.dumps([dict(id=7, name='a/b'), dict(id=3, name='a_b'), dict(id=9, name='A_B')]))
    vocab = load_vocabulary(path)
    assert [(c.id, c.label, c.safe_name) for c in vocab] == [
        (3, 0, 'a_b'), (7, 1, 'a_b__7'), (9, 2, 'A_B__9')]
    assert vocab.match_folder('a_b__7').id == 7
    assert vocab.match_folder('a_b').id == 3  # the folder name wins over other spellings


def test_plain_list_and_retrieval_style_folder_names(tmp_path):
    path = tmp_path / 'names.txt'
    path.write_text('# my classes\nred mug\n\nteddy_bear\n', encoding='utf-8')
    vocab = load_vocabulary(path)
    assert [(c.id, c.name) for c in vocab] == [(1, 'red mug'), (2, 'teddy_bear')]
    assert vocab.match_folder('red_mug').id == 1  # crawls wrote spaces as underscores
    assert vocab.match_folder('TEDDY BEAR').id == 2
    assert vocab.match_folder('sofa') is None


@pytest.mark.parametrize('content, message', [
    ('{"categories": [{"id": 1}]}', 'must be an object with "id" and "name"'),
    ('{"images": []}', 'needs a "categories" list'),
    ('[{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]', 'appears more than once'),
    ('{"categories": [{"id": "x", "name": "a"}]}', 'non-integer id'),
    ('{"categories": []}', 'no categories found'),
    ('{"categories": [{"id": 1, "name": "a", "synonyms": "a"}]}', 'must be a list of strings'),
    ('{not json', 'not valid JSON'),
])
def test_malformed_category_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / 'bad.json'
    path.write_text(content)
    with pytest.raises(VocabularyError, match=message) as info:
        load_vocabulary(path)
    assert 'bad.json' in str(info.value)


def test_missing_category_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_vocabulary(tmp_path / 'nope.json')


def test_prompts_default_synonyms_definitions_and_prompt_file(tmp_path):
    path = tmp_path / 'cats.json'
    path.write_text(json.dumps({'categories': [
        {'id': 1, 'name': 'bat_(animal)', 'synonyms': ['bat_(animal)', 'flying_fox'],
         'def': 'a nocturnal mammal'},
        {'id': 2, 'name': 'mug', 'synonyms': [], 'def': ''}]}))
    vocab = load_vocabulary(path)
    assert build_prompts(vocab) == {1: ('a photo of a single bat (animal)',), 2: ('a photo of a single mug',)}
    prompt_file = tmp_path / 'prompts.json'
    prompt_file.write_text(json.dumps({'mug': ['a mug on a desk', 'a red mug'], '1': 'a bat hanging'}))
    options = PromptOptions(synonyms=True, definitions=True, prompt_file=str(prompt_file))
    prompts = build_prompts(vocab, options)
    assert prompts[1] == (
        'a photo of a single bat (animal)', 'a photo of a single bat (animal), a nocturnal mammal',
        'a photo of a single flying fox', 'a photo of a single flying fox, a nocturnal mammal',
        'a bat hanging')
    assert prompts[2] == ('a photo of a single mug', 'a mug on a desk', 'a red mug')
    assert [prompt_for_index(prompts[2], k) for k in range(4)] == [
        'a photo of a single mug', 'a mug on a desk', 'a red mug', 'a photo of a single mug']
    assert score_text(vocab.by_id(1)) == 'a photo of bat (animal)'


def test_prompt_file_errors(tmp_path):
    vocab_path = tmp_path / 'names.txt'
    vocab_path.write_text('mug\n')
    vocab = load_vocabulary(vocab_path)
    tsv = tmp_path / 'prompts.tsv'
    tsv.write_text('sofa\ta sofa\n')
    with pytest.raises(VocabularyError, match=r"unknown categories \['sofa'\]"):
        build_prompts(vocab, PromptOptions(prompt_file=str(tsv)))
    tsv.write_text('mug without a tab\n')
    with pytest.raises(VocabularyError, match='prompts.tsv:1'):
        build_prompts(vocab, PromptOptions(prompt_file=str(tsv)))
    with pytest.raises(VocabularyError, match='has no prompt'):
        build_prompts(vocab, PromptOptions(templates=()))
    with pytest.raises(VocabularyError, match='must contain'):
        PromptOptions(templates=('a photo of a thing',))


def test_work_dir_records_vocabulary_and_refuses_another(tmp_path):
    first, second = tmp_path / 'a.txt', tmp_path / 'b.txt'
    first.write_text('mug\nbat\n')
    second.write_text('mug\nsofa\n')
    work = WorkDir(tmp_path / 'work')
    with pytest.raises(WorkDirError, match='no recorded vocabulary'):
        open_vocabulary(work)
    recorded = open_vocabulary(work, first)
    assert open_vocabulary(work).ids == recorded.ids == (1, 2)
    assert open_vocabulary(work, first).ids == (1, 2)
    with pytest.raises(WorkDirError, match='differs'):
        open_vocabulary(work, second)
