"""Upstream's LVIS federated prompts (lvis_stage1/2_federated) against its rendered strings and
template hashes, all 16 combinations (tests/oracle/prompts_lvis.json, produced by upstream)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordbench.config.prompts import (
    PromptPreset,
    build_messages,
    prompt_template_hash,
    system_prompt,
    user_prompt,
)

ORACLE = json.loads((Path(__file__).parent / "oracle" / "prompts_lvis.json").read_text("utf-8"))


def test_oracle_has_all_16_combinations():
    assert len(ORACLE) == 16


@pytest.mark.parametrize("key", sorted(ORACLE))
def test_lvis_prompts_equal_the_oracle_byte_for_byte(key):
    ordering, coord_mode, variant, field_order, bbox_format = key.split("|")
    p = PromptPreset("t", ordering, coord_mode, variant, field_order, bbox_format)
    assert system_prompt(p) == ORACLE[key]["system"]
    assert user_prompt(p) == ORACLE[key]["user"]
    assert prompt_template_hash(p) == ORACLE[key]["prompt_template_hash"]
    msgs = build_messages(p, "IMG")
    assert msgs[0]["content"][0]["text"] == ORACLE[key]["system"]
