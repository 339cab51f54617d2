"""The one place the bridge and the visualiser look for a decoder's tokenizer: beside the model,
then its parent folder, then the training corpus under the name its manifest records."""
from __future__ import annotations

import json

from dualmind.data.text_tokenizer import find_text_tokenizer


def test_beside_the_model_comes_first_then_its_parent_then_the_corpus(tmp_path):
    bridge, corpus = tmp_path / "bridge", tmp_path / "corpus"
    (bridge / "model").mkdir(parents=True)
    corpus.mkdir()
    (corpus / "manifest.json").write_text(json.dumps({"tokenizer": {"file": "bpe.json"}}))
    (corpus / "bpe.json").write_text("{}")
    assert find_text_tokenizer(bridge / "model", corpus) == (corpus / "bpe.json", "")
    (bridge / "tokenizer.json").write_text("{}")  # a bridge folder's layout: model/../
    assert find_text_tokenizer(bridge / "model", corpus) == (bridge / "tokenizer.json", "")
    own = bridge / "model" / "tokenizer.json"  # an export folder's own
    own.write_text("{}")
    assert find_text_tokenizer(bridge / "model", corpus) == (own, "")


def test_not_found_says_where_it_looked(tmp_path):
    model = tmp_path / "export"
    model.mkdir()
    path, why = find_text_tokenizer(model, None)
    assert path is None and str(model / "tokenizer.json") in why and "data.dir" in why
    path, why = find_text_tokenizer(model, tmp_path / "gone")
    assert path is None and f"corpus {tmp_path / 'gone'} is not here" in why
    (tmp_path / "corpus").mkdir()
    path, why = find_text_tokenizer(model, tmp_path / "corpus")
    assert path is None and "has no text tokenizer" in why
