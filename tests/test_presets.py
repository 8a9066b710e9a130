"""TOML presets: the shipped ones hold the documented values; bad files fail with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordbench.config.presets import (
    configs_dir,
    list_presets,
    load_decode_preset,
    load_prompt_preset,
    load_rescale_preset,
)
from coordbench.config.prompts import prompt_template_hash
from coordbench.errors import ConfigError

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
    monkeypatch.delenv("COORDBENCH_CONFIGS", raising=False)


# [UP-PRESET-NAMING]: rescale_32_768 -> max_pixels 786432, rescale_32_1024 -> 1048576;
# the embedded shapes images are 256x256 = 32*32*64.
@pytest.mark.parametrize(
    ("name", "max_pixels"), [("64", 256 * 256), ("768", 786432), ("1024", 1048576)]
)
def test_rescale_presets(name, max_pixels):
    p = load_rescale_preset(name)
    assert (p.name, p.factor, p.max_pixels, p.min_pixels, p.algorithm) == (
        name,
        32,
        max_pixels,
        4096,
        "current",
    )


# Hashes from reference/oracle/prompts.json (upstream's own get_template_prompt_hash).
@pytest.mark.parametrize(
    ("name", "surface", "layout", "hash_prefix"),
    [
        ("coco80_desc_first", "coord_tokens", "text_first", "80bc24bfb8e85787"),
        ("coco80_desc_first_image_first", "coord_tokens", "image_first", "80bc24bfb8e85787"),
        ("coco80_geometry_first", "coord_tokens", "text_first", "f1decedfadffaa0a"),
        ("default_desc_first", "coord_tokens", "text_first", "5fae3a67178fa997"),
        ("default_desc_first_image_first", "coord_tokens", "image_first", "5fae3a67178fa997"),
        ("coco80_norm1000", "norm1000", "text_first", "e1091c155b70aa7a"),
        ("qwen25_pixel", "pixel", "text_first", None),
        ("qwen3_rel1000", "rel1000", "text_first", None),
    ],
)
def test_prompt_presets(name, surface, layout, hash_prefix):
    p = load_prompt_preset(name)
    assert (p.name, p.surface, p.layout, p.bbox_format) == (name, surface, layout, "xyxy")
    if hash_prefix:
        assert prompt_template_hash(p).startswith(hash_prefix)


def test_coco_benchmark_preset_is_the_upstream_setting():
    p = load_prompt_preset("coco80_desc_first")
    assert (p.ordering, p.coord_mode, p.variant, p.field_order) == (
        "sorted",
        "coord_tokens",
        "coco_80",
        "desc_first",
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "greedy",
            {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 1024, "repetition_penalty": 1.0},
        ),
        (
            "upstream_bench",
            {
                "temperature": 0.1,
                "top_p": 0.9,
                "max_new_tokens": 3084,
                "repetition_penalty": 1.1,
                "seed": 42,
            },
        ),
        (
            "upstream_default",
            {
                "temperature": 0.01,
                "top_p": 0.95,
                "max_new_tokens": 1024,
                "repetition_penalty": 1.05,
            },
        ),
    ],
)
def test_decode_presets(name, expected):
    assert load_decode_preset(name) == expected


def test_decode_preset_applies_to_run_config():
    from dataclasses import replace

    from coordbench.config.run import RunConfig

    cfg = replace(RunConfig(), **load_decode_preset("upstream_bench")).resolved()
    assert (cfg.temperature, cfg.max_new_tokens, cfg.seed) == (0.1, 3084, 42)


@pytest.mark.parametrize("kind", ["rescale", "prompt", "decode"])
def test_every_shipped_preset_loads(kind):
    names = list_presets(kind)
    assert names == sorted(p.stem for p in (REPO_CONFIGS / kind).glob("*.toml")) and names
    loader = {
        "rescale": load_rescale_preset,
        "prompt": load_prompt_preset,
        "decode": load_decode_preset,
    }[kind]
    for name in names:
        loader(name)


def test_list_presets_unknown_kind():
    with pytest.raises(
        ConfigError, match=r"expected `kind` to be one of \('rescale', 'prompt', 'decode', 'task'\)"
    ):
        list_presets("suite")


def test_unknown_name_lists_available():
    with pytest.raises(ConfigError) as err:
        load_rescale_preset("769")
    msg = str(err.value)
    assert "unknown rescale preset '769'" in msg and "1024, 64, 768" in msg
    with pytest.raises(ConfigError, match="coco80_desc_first"):
        load_prompt_preset("coco80")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_unknown_key_is_rejected_naming_key_file_and_allowed(tmp_path):
    path = write(tmp_path, "fast.toml", "temperature = 0.0\ntemprature = 0.5\n")
    with pytest.raises(ConfigError) as err:
        load_decode_preset(str(path))
    msg = str(err.value)
    assert str(path) in msg and "'temprature'" in msg
    assert (
        "allowed keys: name, temperature, top_p, top_k, max_new_tokens, repetition_penalty, seed"
        in msg
    )


def test_load_by_path_and_defaults(tmp_path):
    path = write(tmp_path, "my.toml", "factor = 28\nbudget = 100\n")
    p = load_rescale_preset(str(path))
    assert (p.name, p.max_pixels, p.min_pixels, p.algorithm) == (
        "my",
        28 * 28 * 100,
        4096,
        "current",
    )


@pytest.mark.parametrize(
    ("kind", "text", "match"),
    [
        ("rescale", "factor = 32\n", "missing required key 'budget'"),
        ("rescale", 'factor = "32"\nbudget = 768\n', "`factor` must be int"),
        ("rescale", "factor = 32.0\nbudget = 768\n", "`factor` must be int"),
        (
            "rescale",
            "factor = 32\nbudget = 768\nalgorithm = 'qwen'\n",
            "expected `algorithm` to be one of",
        ),
        ("rescale", "factor = 32\nbudget = 1\nmin_pixels = 4096\n", "min_pixels <= max_pixels"),
        ("rescale", "factor = 32\nbudget = 768\nmax_pixels = 786432\n", "unknown key 'max_pixels'"),
        (
            "prompt",
            "variant = 'coco80'\n",
            "expected `variant` to be one of \\('default', 'coco_80', .*\\) but got 'coco80'",
        ),
        ("prompt", "layout = true\n", "`layout` must be str"),
        ("decode", "temperature = true\n", "`temperature` must be float"),
        ("decode", "temperature = 0\ntop_p = 0\n", "`top_p` = 0.0 is out of range"),
        ("decode", "temperature = -1\n", "`temperature` = -1.0 is out of range"),
        ("decode", "temperature = 0\nmax_new_tokens = 0\n", "`max_new_tokens` = 0 is out of range"),
        ("decode", "temperature = [\n", "cannot read decode preset"),
        ("decode", "name = 'other'\ntemperature = 0\n", "must equal the file name 'bad'"),
    ],
)
def test_invalid_files_are_config_errors_naming_the_file(tmp_path, kind, text, match):
    path = write(tmp_path, "bad.toml", text)
    loader = {
        "rescale": load_rescale_preset,
        "prompt": load_prompt_preset,
        "decode": load_decode_preset,
    }[kind]
    with pytest.raises(ConfigError, match=match) as err:
        loader(str(path))
    assert str(path) in str(err.value)


def test_temperature_int_becomes_float(tmp_path):
    assert load_decode_preset(str(write(tmp_path, "t.toml", "temperature = 0\n"))) == {
        "temperature": 0.0
    }


def test_missing_path_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="prompt preset file not found"):
        load_prompt_preset(str(tmp_path / "nope.toml"))


def test_env_var_overrides_configs_dir(tmp_path, monkeypatch):
    (tmp_path / "decode").mkdir()
    write(tmp_path / "decode", "fast.toml", "temperature = 0.5\n")
    monkeypatch.setenv("COORDBENCH_CONFIGS", str(tmp_path))
    assert configs_dir() == tmp_path
    assert list_presets("decode") == ["fast"] and list_presets("rescale") == []
    assert load_decode_preset("fast") == {"temperature": 0.5}
    with pytest.raises(ConfigError, match="available: none"):
        load_rescale_preset("768")


def test_default_configs_dir_is_the_repo_checkout():
    assert configs_dir() == REPO_CONFIGS
