from __future__ import annotations

import pytest

from coordbench.config.run import EMBEDDED_CKPT, EMBEDDED_DATA, RunConfig, Shard
from coordbench.errors import ConfigError


@pytest.mark.parametrize("text", ["3/2", "a/b", "1", "-1/2", "0/0"])
def test_bad_shards_are_config_errors(text):
    with pytest.raises(ConfigError, match="shard"):
        Shard.parse(text)


def test_shard_parse():
    assert Shard.parse("3/8") == Shard(3, 8)
    assert Shard.parse(None) == Shard(0, 1)


def test_embedded_default_resolution():
    cfg = RunConfig().resolved()
    assert cfg.ckpt == str(EMBEDDED_CKPT)
    assert cfg.data == str(EMBEDDED_DATA)
    assert (cfg.preset, cfg.prompt) == ("64", "default_desc_first")


def test_user_checkpoint_defaults_to_coco_768():
    cfg = RunConfig(ckpt="/x/ckpt").resolved()
    assert cfg.preset == "768" and cfg.prompt == "coco80_desc_first"
    assert cfg.data.endswith("public_data/coco/rescale_32_768/val.coord.jsonl")


@pytest.mark.parametrize(
    "kw",
    [
        {"limit": -1},
        {"batch_size": 0},
        {"temperature": -0.1},
        {"top_p": 0.0},
        {"max_new_tokens": 0},
        {"scorer": "x"},
    ],
)
def test_invalid_values_rejected(kw):
    with pytest.raises(ConfigError):
        RunConfig(**kw).resolved()
