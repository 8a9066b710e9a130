"""The chunked results reader gives exactly what one orjson.loads of the file gives."""

from __future__ import annotations

import json

import pytest

from coordbench.errors import ArtifactError
from coordbench.rundir.json_chunks import json_list_columns


def _rows(doc, offset):
    return (offset, doc)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_pieces_concatenate_to_the_whole_list(tmp_path, chunk):
    rows = [{"image_id": i, "bbox": [i, 1, 2, 3], "score": i / 7} for i in range(57)]
    p = tmp_path / "r.json"
    p.write_text(json.dumps(rows, indent=None if chunk % 2 else 1))
    parts = json_list_columns(p, _rows, chunk)
    assert [r for _, piece in parts for r in piece] == rows
    assert [o for o, _ in parts] == [sum(len(x) for _, x in parts[:k]) for k in range(len(parts))]


def test_a_wrong_split_falls_back_to_the_whole_file(tmp_path):
    rows = [{"a": {"b": 1}, "s": "x},y"}, {"a": {"b": 2}, "s": "},"}] * 20
    p = tmp_path / "r.json"
    p.write_text(json.dumps(rows))
    parts = json_list_columns(p, _rows, 5)
    assert [r for _, piece in parts for r in piece] == rows


def test_not_a_list_and_nan_and_ndjson(tmp_path):
    p = tmp_path / "r.json"
    p.write_text('{"a": 1}')
    assert json_list_columns(p, _rows) == {"a": 1}
    p.write_text('[{"score": NaN}]')
    with pytest.raises(ArtifactError, match="NaN"):
        json_list_columns(p, _rows)
    p.write_text('{"score": 1}\n{"score": 2}\n')
    with pytest.raises(ArtifactError, match="NDJSON"):
        json_list_columns(p, _rows)
    p.write_text("[]")
    assert json_list_columns(p, _rows) == []
