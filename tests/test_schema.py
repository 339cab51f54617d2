"""hypertrain.jsonl schema: valid records pass, every kind of breakage names file and line."""

from __future__ import annotations

import json

import pytest

from dualmind.data.schema import (
    HypertrainRecord,
    SchemaError,
    read_hypertrain,
    validate_file,
    validate_record,
)

SCENE = {
    "id": "d1#s0",
    "kind": "scene",
    "lang": "en",
    "text": "Who's there?",
    "hyperphrase": "\ue000\ue001",
    "doc": 0,
    "split": "train",
    "n_units": 2,
    "n_bytes": 12,
}
QA = {
    "id": "qa1",
    "kind": "qa",
    "lang": "ru",
    "text": "Как дела?",
    "hyperphrase": "\ue002",
    "input": "Как дела?",
    "target": "Хорошо.",
    "target_hyperphrase": "\ue003",
}


def write_lines(path, lines):
    path.write_bytes(
        b"".join((x if isinstance(x, bytes) else x.encode("utf-8")) + b"\n" for x in lines)
    )
    return path


def test_valid_records_round_trip(tmp_path):
    path = write_lines(
        tmp_path / "h.jsonl", [json.dumps(SCENE), json.dumps(QA, ensure_ascii=False)]
    )
    recs = list(read_hypertrain(path))
    assert [r.kind for r in recs] == ["scene", "qa"]
    assert recs[1].target == "Хорошо."
    # to_json gives back exactly the keys that carry a value
    assert json.loads(recs[0].to_json()) == SCENE
    assert validate_file(path) == {
        "records": 2,
        "kind.scene": 1,
        "lang.en": 1,
        "kind.qa": 1,
        "lang.ru": 1,
    }


@pytest.mark.parametrize(
    "change, message",
    [
        ({"text": None}, "key 'text' must be a string"),
        ({"text": 5}, "key 'text' must be a string, got int"),
        ({"doc": True}, "key 'doc' must be an integer, got bool"),
        ({"doc": -1}, "key 'doc' must be >= 0"),
        ({"kind": "story"}, "key 'kind' must be one of"),
        ({"n_units": 3}, "n_units=3 but the hyperphrase has 2 symbols"),
        ({"hyperphrse": "x"}, "unknown key 'hyperphrse'"),
        ({"input": "q", "target": "a"}, "only allowed for kind 'pair' or 'qa'"),
        ({"id": ""}, "key 'id' must not be empty"),
        ({"meta": []}, "key 'meta' must be an object"),
    ],
)
def test_wrong_types_and_keys_name_file_and_line(tmp_path, change, message):
    bad = {**SCENE, **change}
    path = write_lines(tmp_path / "h.jsonl", [json.dumps(SCENE), json.dumps(bad)])
    with pytest.raises(SchemaError) as e:
        list(read_hypertrain(path))
    assert message in str(e.value)
    assert str(e.value).startswith(f"{path}:2: ")
    assert e.value.line == 2 and e.value.path == str(path)


def test_missing_keys(tmp_path):
    for key in ("id", "kind", "lang", "text", "hyperphrase"):
        obj = {k: v for k, v in SCENE.items() if k != key}
        with pytest.raises(SchemaError, match=f"missing required key '{key}'"):
            validate_record(obj, "x.jsonl", 7)
    qa = {k: v for k, v in QA.items() if k != "target"}
    with pytest.raises(SchemaError, match="x.jsonl:3: missing key 'target' required for kind 'qa'"):
        validate_record(qa, "x.jsonl", 3)


@pytest.mark.parametrize(
    "line, message",
    [
        (b'{"id": "a", ', "malformed JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b"", "empty line"),
        (b'{"id": "\xff\xfe"}', "invalid UTF-8"),
    ],
)
def test_malformed_lines(tmp_path, line, message):
    path = write_lines(
        tmp_path / "h.jsonl", [json.dumps(SCENE), json.dumps({**SCENE, "id": "b"}), line]
    )
    with pytest.raises(SchemaError, match=message) as e:
        list(read_hypertrain(path))
    assert e.value.line == 3


def test_duplicate_ids_and_missing_file(tmp_path):
    path = write_lines(tmp_path / "h.jsonl", [json.dumps(SCENE), json.dumps(SCENE)])
    with pytest.raises(SchemaError, match=r"h.jsonl:2: duplicate id 'd1#s0'"):
        list(read_hypertrain(path))
    assert len(list(read_hypertrain(path, check_unique_ids=False))) == 2
    with pytest.raises(SchemaError, match="no such file"):
        list(read_hypertrain(tmp_path / "nope.jsonl"))


def test_record_dataclass_drops_empty_optionals():
    rec = HypertrainRecord(id="x", kind="scene", lang="en", text="a", hyperphrase="\ue000")
    assert rec.to_dict() == {
        "id": "x",
        "kind": "scene",
        "lang": "en",
        "text": "a",
        "hyperphrase": "\ue000",
    }
