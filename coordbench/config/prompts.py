"""Prompt presets: the exact upstream CoordExp prompt strings, the template hash, chat messages.

A prompt is composed the way upstream composes it [UP-PROMPT-HASH]: a base system/user text
chosen by (ordering, coord surface), a field-order rule, a bbox rule and a one-object example
substituted in, then the variant's suffixes appended. The `coord_tokens` and `norm1000_text`
surfaces reproduce `reference/oracle/prompts.json` byte for byte (tested); `pixel` and `rel1000`
are coordbench additions with no upstream oracle.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from coordbench.errors import ConfigError, DataError
from coordbench.geometry import COORD_MAX, coord_token, parse_coord_token

ORDERINGS = ("sorted", "random")
COORD_MODES = ("coord_tokens", "norm1000_text", "pixel", "rel1000")
# grounding: one box for the sample's query; lvis_*: upstream's federated LVIS texts
VARIANTS = ("default", "coco_80", "grounding", "lvis_stage1_federated", "lvis_stage2_federated")
FIELD_ORDERS = ("desc_first", "geometry_first")
BBOX_FORMATS = ("xyxy",)  # upstream also has cxcywh / cxcy_logw_logh; our parser is xyxy only
LAYOUTS = ("text_first", "image_first")
# where a native prompt's class list comes from: the data set's categories (the task's prompt
# context), else the variant's list; `variant` pins the variant's list whatever the data
CLASS_SOURCES = ("dataset", "variant")
# answer dialects (coordbench.parse.dialects); coordjson is upstream's, the rest are native
DIALECTS = (
    "coordjson",
    "qwen25_json",
    "qwen3_json",
    "gemma3_json",
    "internvl",
    "paligemma",
    "florence2",
)

# coord_mode -> coordbench.types.SURFACES
_SURFACE = {
    "coord_tokens": "coord_tokens",
    "norm1000_text": "norm1000",
    "pixel": "pixel",
    "rel1000": "rel1000",
}

# Official COCO-2017 category names in category-id order (upstream `COCO_80_CLASS_NAMES`).
COCO80_CLASSES = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)


@dataclass(frozen=True)
class PromptContext:
    """What a sample contributes to its prompt, as its task builds it: the class list (the data
    set's categories, in order) and, for grounding, the query. None: the preset's own."""

    classes: tuple[str, ...] | None = None
    query: str | None = None


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"expected `{name}` to be one of {allowed} but got {value!r}")


@dataclass(frozen=True)
class PromptPreset:
    """One prompt setting; everything but `layout` feeds the upstream template hash."""

    name: str
    ordering: str = "sorted"
    coord_mode: str = "coord_tokens"
    variant: str = "default"
    field_order: str = "desc_first"
    bbox_format: str = "xyxy"
    # text_first = upstream inference, image_first = upstream training [UP-MESSAGE-LAYOUT]
    layout: str = "text_first"
    # the format the model answers in; not coordjson: the family's own prompt, no system message
    dialect: str = "coordjson"
    classes: str = "dataset"

    def __post_init__(self) -> None:
        _check_choice("dialect", self.dialect, DIALECTS)
        _check_choice("ordering", self.ordering, ORDERINGS)
        _check_choice("coord_mode", self.coord_mode, COORD_MODES)
        _check_choice("variant", self.variant, VARIANTS)
        _check_choice("field_order", self.field_order, FIELD_ORDERS)
        _check_choice("bbox_format", self.bbox_format, BBOX_FORMATS)
        _check_choice("layout", self.layout, LAYOUTS)
        _check_choice("classes", self.classes, CLASS_SOURCES)

    @property
    def surface(self) -> str:
        """The parser's coordinate surface (`coordbench.types.SURFACES`)."""
        return _SURFACE[self.coord_mode]


# ----------------------------------------------------------------------- text parts
# [UP-PROMPT-TEXT]

_SYSTEM_HEAD = (
    "You are a general-purpose object detection and grounding assistant. "
    'Output exactly one CoordJSON object {"objects": [...]} with no extra text.\n'
    '- The top-level object must contain exactly one key "objects".\n'
)
_PREFER = (
    "Prefer including a clearly visible, localizable instance rather than omitting it "
    "because the boundary is slightly uncertain."
)
_FIELD_ORDER_SYSTEM = {
    "desc_first": "Each objects[] record must place desc before exactly one geometry key "
    "(bbox_2d OR poly); never emit multiple geometries.",
    "geometry_first": "Each objects[] record must place exactly one geometry key "
    "(bbox_2d OR poly) before desc; never emit multiple geometries.",
}
_FIELD_ORDER_USER = {
    "desc_first": "has desc before one geometry (bbox_2d or poly)",
    "geometry_first": "has one geometry (bbox_2d or poly) before desc",
}
_BBOX_SYSTEM_RULE = {"xyxy": "bbox_2d is [x1, y1, x2, y2] with x1<=x2 and y1<=y2."}
_BBOX_USER_RULE = {"xyxy": "Use bbox_2d as [x1, y1, x2, y2]."}
_POLY_RULES = (
    "  * poly is a flat list [x1, y1, x2, y2, ...] with an even number of coords "
    "and >= 6 entries.\n"
    "    - Preserve adjacency: consecutive vertices are connected, "
    "and the last connects back to the first.\n"
    "    - Use a consistent vertex order: start from the top-most (then left-most) vertex, "
    "then go clockwise around the centroid.\n"
    "    - Do NOT sort poly points by x/y; that can create self-intersections.\n"
)
_LAYOUT_RULE = (
    "- JSON layout: single line; one space after colons and commas; "
    "double quotes for keys/strings; "
    "no trailing text.\n"
)
_ORDER_RULE = {
    "sorted": "- Order objects by image-space top-left anchor (y1, x1): "
    "top-to-bottom then left-to-right.\n"
    "  For poly, anchor is (minY, minX) over polygon vertices.\n",
    "random": "- Object order is unrestricted; any ordering is acceptable.\n",
}
_PRIOR_RULES = (
    "Prior rules:\n"
    "- Open-domain object detection/grounding on public datasets; cover all visible targets.\n"
)

_USER_OPENING = {
    "sorted": "Detect and list every clearly visible object instance in the image, ordered by "
    "image-space top-left (y1, x1) top-to-bottom then left-to-right. "
    "For poly anchors, use (minY, minX) over all vertices.",
    "random": "Detect and list every clearly visible object instance in the image "
    "(any ordering is acceptable).",
}
_NUMERIC_CLOSING = "Do not emit coord tokens, quoted numbers, floats, extra keys, or extra text."


@dataclass(frozen=True)
class _Surface:
    """How one coordinate surface is described: system coordinate bullets, user phrase, closing."""

    system_rules: str
    user_phrase: str
    user_closing: str


def _numeric_examples(intro: str) -> str:
    return (
        f"- Coordinates must be written as {intro} only. Examples that serialize correctly:\n"
        "  * bbox_2d: [12, 34, 256, 480]\n"
        "  * poly: [10, 20, 200, 20, 200, 220, 10, 220]\n"
    )


_SURFACE_TEXT = {
    "coord_tokens": _Surface(
        "- Coordinates must be written as coord tokens `<|coord_N|>` only. "
        "Examples that tokenize correctly:\n"
        "  * bbox_2d: [<|coord_12|>, <|coord_34|>, <|coord_256|>, <|coord_480|>]\n"
        "  * poly: [<|coord_10|>, <|coord_20|>, <|coord_200|>, <|coord_20|>, <|coord_200|>, "
        "<|coord_220|>, <|coord_10|>, <|coord_220|>]\n"
        "- Coordinates are integers in [0,999]; "
        "always keep bare `<|coord_...|>` literals (no quotes) "
        "in geometry arrays.\n",
        "bare `<|coord_N|>` tokens (0\u2013999)",  # EN DASH, as upstream
        "Do not quote coord tokens, do not emit extra keys, and emit no extra text.",
    ),
    "norm1000_text": _Surface(
        _numeric_examples("bare JSON integers in [0,999]")
        + "- Coordinates are always normalized to the shared 0..999 lattice. "
        "Do not emit coord tokens, "
        "quoted numbers, floats, or pixel-space coordinates.\n",
        "bare JSON integer coordinates (0\u2013999)",
        _NUMERIC_CLOSING,
    ),
    # coordbench additions, NOT upstream (no oracle): written after the norm1000_text pattern.
    # pixel = absolute pixels of the image the model sees (Qwen2.5-VL grounding style).
    "pixel": _Surface(
        _numeric_examples("bare JSON integers in absolute pixels of the input image")
        + "- Coordinates are absolute pixel positions in the image as given: "
        "0 <= x <= width-1 and 0 <= y <= height-1. "
        "Do not emit coord tokens, quoted numbers, floats, or normalized coordinates.\n",
        "bare JSON integer pixel coordinates of the input image",
        _NUMERIC_CLOSING,
    ),
    # rel1000 = relative to the image size on a 0..1000 scale (Qwen3-VL grounding style).
    "rel1000": _Surface(
        _numeric_examples("bare JSON integers in [0,1000]")
        + "- Coordinates are relative to the image size on a 0..1000 scale "
        "(x/width*1000, y/height*1000). "
        "Do not emit coord tokens, quoted numbers, floats, or pixel-space coordinates.\n",
        "bare JSON integer coordinates relative to the image size (0\u20131000)",
        _NUMERIC_CLOSING,
    ),
}

_COCO80_LIST = ", ".join(COCO80_CLASSES)
# variant -> (system suffix, user suffix); upstream `PROMPT_VARIANT_REGISTRY`.
_VARIANT_SUFFIX = {
    "default": ("", ""),
    "grounding": ("", ""),
    "lvis_stage1_federated": ("", ""),  # whole texts of their own: _LVIS_TEXT
    "lvis_stage2_federated": ("", ""),
    "coco_80": (
        "- COCO-80 closed-class policy: `desc` must be exactly one canonical class name "
        f"from this list (case-sensitive): {_COCO80_LIST}.\n"
        "- Do not emit any class outside this list; "
        "if uncertain, choose the closest canonical class and keep details concise.\n"
        "- Coverage: locate each clearly visible object instance, "
        "including small or partially occluded instances when they are still localizable; "
        "when multiple instances of the same class exist, "
        "output multiple records (one per instance).\n"
        "- Atomic instances: each record must refer to exactly one object instance; "
        "each bbox_2d must tightly cover a single instance.\n"
        "- Prefer one tight atomic box for a clearly visible instance "
        "rather than omitting it because the boundary is slightly uncertain.\n"
        "- Do not output group boxes that cover multiple instances "
        "(e.g., a long thin strip over a crowd or shelf row).\n"
        "- Avoid duplicates: do not output multiple near-identical boxes for the same instance.\n",
        f" Restrict `desc` to this COCO-80 class list: {_COCO80_LIST}."
        " Locate each clearly visible object instance, "
        "including small or partially occluded instances "
        "when they are still localizable; output one record per instance."
        f" {_PREFER}"
        " Each record must correspond to exactly one object instance with an atomic bbox; "
        "do not use one box to cover multiple objects and do not repeat near-identical boxes.",
    ),
}

# Upstream's LVIS variants replace the whole system and user texts [UP-PROMPT-TEXT]: the same
# for both orderings and coord modes (the coord-token wording stays even for norm1000_text);
# only the field-order rule, the bbox rule and the rendered example are substituted.
_LVIS_SYSTEM_RULES = (
    "- Geometry formatting rules:\n"
    "  * {bbox_rule}\n"
    + _POLY_RULES
    + "- Coordinates must be written as coord tokens `<|coord_N|>` only.\n"
)
_LVIS_TEXT = {
    "lvis_stage1_federated": (
        "You are a dense object annotation assistant for LVIS federated labels. ",
        "- LVIS federated policy: this target is the verified annotation subset for the image, "
        "not an exhaustive statement about all visible categories.\n"
        "- Omitted visible categories may be intentionally unlabeled; do not interpret omission "
        "as absence.\n"
        "- Emit one record per verified annotated instance, including small or partially occluded "
        "instances when they are still localizable; keep boxes/polygons atomic, avoid duplicates, "
        "and prefer inclusion over omission when a grounded single-instance geometry is "
        "available.\n",
        "Return the verified LVIS annotation subset for this image as a single CoordJSON object "
        '{{"objects": [...]}} using bare `<|coord_N|>` tokens (0\u2013999). Use canonical LVIS '
        "category names, preserve one record per annotated instance, keep geometry exact, and "
        "include every verified annotated instance you can localize, including small or "
        "partially occluded ones. Each record {field_order}. {bbox_rule} Important: omitted "
        "visible categories may be intentionally unlabeled under LVIS federated annotations, so "
        "the target is a verified subset rather than an exhaustive absence claim. Use the exact "
        "per-object format: {example}. Do not quote coord tokens, do not emit extra keys, and "
        "emit no extra text.",
    ),
    "lvis_stage2_federated": (
        "You are a dense object detection assistant for LVIS-style federated annotations. ",
        "- LVIS federated policy: some visible categories may be unlabeled in the verified "
        "subset, so do not assume an omitted category is absent.\n"
        "- Continue listing clearly visible, localizable instances, including small or partially "
        "occluded ones, even when boundaries are mildly uncertain; keep one record per atomic "
        "instance, avoid duplicates, and stay within canonical LVIS category names.\n",
        "List clearly visible LVIS objects in this image as a single CoordJSON object "
        '{{"objects": [...]}} using bare `<|coord_N|>` tokens (0\u2013999). Do not assume '
        "unlisted categories are absent just because the verified subset may be partial; "
        "continue with additional visible instances when you can localize them, including small "
        "or partially occluded ones, and prefer inclusion over omission when the boundary is "
        "mildly uncertain. Use canonical LVIS category names, one atomic instance per record, "
        "and do not emit duplicate near-identical boxes. Each record {field_order}. {bbox_rule} "
        "Use the exact per-object format: {example}. Do not quote coord tokens, do not emit "
        "extra keys, and emit no extra text.",
    ),
}


def _lvis_system(preset: PromptPreset) -> str:
    opening, policy, _ = _LVIS_TEXT[preset.variant]
    return (
        opening
        + 'Output exactly one CoordJSON object {"objects": [...]} with no extra text.\n'
        + '- The top-level object must contain exactly one key "objects".\n'
        + f"- {_FIELD_ORDER_SYSTEM[preset.field_order]}\n"
        + "- Use the canonical LVIS category string for `desc`; keep category names exact and "
        "concise.\n"
        + _LVIS_SYSTEM_RULES.format(bbox_rule=_BBOX_SYSTEM_RULE[preset.bbox_format])
        + policy
        + _LAYOUT_RULE
    )


def _lvis_user(preset: PromptPreset, example: str) -> str:
    return _LVIS_TEXT[preset.variant][2].format(
        field_order=_FIELD_ORDER_USER[preset.field_order],
        bbox_rule=_BBOX_USER_RULE[preset.bbox_format],
        example=example,
    )


# The per-object example in the user prompt. Upstream's geometry-first example says
# "black cat near sofa" while the desc-first one says "black cat"; kept as is.
_EXAMPLE_BOX = [110, 310, 410, 705]
_EXAMPLE_DESC = {"desc_first": "black cat", "geometry_first": "black cat near sofa"}


# Native dialects: each family's documented detection prompt ({classes}: the class list).
# Qwen3-VL / Qwen2.5-VL cookbooks (2d grounding), InternVL's grounding docs, PaliGemma's
# `detect a ; b` task prefix, Florence-2's `<OD>` task token, Gemini/Gemma 3 box_2d docs.
_NATIVE_PROMPTS = {
    "qwen25_json": 'Locate every instance that belongs to the following categories: "{classes}". '
    "Report bbox coordinates in JSON format.",
    "qwen3_json": 'Locate every instance that belongs to the following categories: "{classes}". '
    "Report bbox coordinates in JSON format.",
    "gemma3_json": "Detect the 2d bounding boxes of every instance of these objects: {classes}. "
    'Output a json list where each entry contains the 2D bounding box in "box_2d" and a text '
    'label in "label". The box_2d should be [ymin, xmin, ymax, xmax] normalized to 0-1000.',
    "internvl": "Please detect and label all objects in the following image and mark their "
    "positions. The objects are: {classes}.",
    "paligemma": "detect {classes_semicolon}",
    "florence2": "<OD>",
}
_GENERIC_CLASSES = "object"

# Native grounding (referring-expression) prompts, {query}: the expression. Sources in
# docs/grounding.md: the Qwen2.5-VL / Qwen3-VL cookbooks' grounding prompt, InternVL's RefCOCO
# evaluation prompt, PaliGemma's `detect` prefix, Florence-2's phrase-grounding task token and
# the Gemini / Gemma 3 box_2d convention.
_NATIVE_GROUNDING = {
    "qwen25_json": "Locate the {query}, output its bbox coordinates using JSON format.",
    "qwen3_json": "Locate the {query}, output its bbox coordinates using JSON format.",
    "gemma3_json": 'Detect the 2d bounding box of "{query}". Output a json list where each entry '
    'contains the 2D bounding box in "box_2d" and a text label in "label". The box_2d should be '
    "[ymin, xmin, ymax, xmax] normalized to 0-1000.",
    "internvl": "Please provide the bounding box coordinate of the region this sentence "
    "describes: <ref>{query}</ref>",
    "paligemma": "detect {query}",
    "florence2": "<CAPTION_TO_PHRASE_GROUNDING>{query}",
}
# CoordJSON grounding (a coordbench text, no upstream oracle): the detection system prompt, and
# a user turn asking for exactly one record for the expression.
_COORDJSON_GROUNDING = (
    'Locate the single object instance described by the expression "{query}". Return a single '
    'CoordJSON object {{"objects": [...]}} with exactly one record whose desc is the expression, '
    "using {phrase}. {bbox_rule} Use the exact per-object format: {example}. {closing}"
)
QUERY_PLACEHOLDER = "{query}"  # the template hash sees this in place of each sample's query


def prompt_classes(preset: PromptPreset, context: PromptContext | None = None) -> tuple[str, ...]:
    """The class list a native prompt names: the data set's (from the task's context) unless the
    preset pins its variant's list (`classes = "variant"`), else the variant's list."""
    if preset.classes == "dataset" and context is not None and context.classes:
        return tuple(context.classes)
    return COCO80_CLASSES if preset.variant == "coco_80" else (_GENERIC_CLASSES,)


def _query(preset: PromptPreset, context: PromptContext | None) -> str:
    if context is None or context.query is None:
        raise ConfigError(
            f"prompt preset {preset.name!r} is a grounding prompt (variant grounding): it needs a "
            "sample with a query (a referring expression); use it with --task refcoco"
        )
    return context.query


def native_prompt(preset: PromptPreset, context: PromptContext | None = None) -> str:
    """The family prompt of a native-dialect preset, naming `prompt_classes` (detection) or the
    sample's query (grounding)."""
    if preset.variant == "grounding":
        return _NATIVE_GROUNDING[preset.dialect].replace("{query}", _query(preset, context))
    names = prompt_classes(preset, context)
    return _NATIVE_PROMPTS[preset.dialect].format(
        classes=", ".join(names), classes_semicolon=" ; ".join(names)
    )


# --------------------------------------------------------------------------- public API


def system_prompt(preset: PromptPreset) -> str:
    """The system message text (ends with a newline, as upstream)."""
    if preset.variant in _LVIS_TEXT:
        return _lvis_system(preset)
    return (
        _SYSTEM_HEAD
        + f"- {_FIELD_ORDER_SYSTEM[preset.field_order]}\n"
        + f"- {_PREFER}\n"
        + "- Geometry formatting rules:\n"
        + f"  * {_BBOX_SYSTEM_RULE[preset.bbox_format]}\n"
        + _POLY_RULES
        + _SURFACE_TEXT[preset.coord_mode].system_rules
        + _LAYOUT_RULE
        + _ORDER_RULE[preset.ordering]
        + _PRIOR_RULES
        + _VARIANT_SUFFIX[preset.variant][0]
    )


def user_prompt(preset: PromptPreset, context: PromptContext | None = None) -> str:
    """The user message text (one line); a grounding preset asks for the sample's query."""
    surface = _SURFACE_TEXT[preset.coord_mode]
    example = _render_object(_EXAMPLE_DESC[preset.field_order], _EXAMPLE_BOX, preset)
    if preset.variant in _LVIS_TEXT:
        return _lvis_user(preset, example)
    if preset.variant == "grounding":
        return _COORDJSON_GROUNDING.format(
            query="{query}",
            phrase=surface.user_phrase,
            bbox_rule=_BBOX_USER_RULE[preset.bbox_format],
            example=example,
            closing=surface.user_closing,
        ).replace("{query}", _query(preset, context))
    return (
        f"{_USER_OPENING[preset.ordering]} "
        f'Return a single CoordJSON object {{"objects": [...]}} using {surface.user_phrase} '
        f"where each record {_FIELD_ORDER_USER[preset.field_order]}. "
        f"{_BBOX_USER_RULE[preset.bbox_format]} "
        f"Use the exact per-object format: {example}. "
        f"{_PREFER} "
        f"{surface.user_closing}" + _VARIANT_SUFFIX[preset.variant][1]
    )


def prompt_template_hash(preset: PromptPreset, context: PromptContext | None = None) -> str:
    """Upstream `prompt_template_hash` [UP-PROMPT-HASH]: sha256 of json.dumps(sort_keys,
    ensure_ascii=False).

    `layout` is not part of it (upstream has no such knob); the run identity records it separately.
    Native-dialect presets hash their dialect and family prompt instead of upstream's texts.
    A grounding prompt is hashed with `{query}` in place of the sample's expression.
    """
    if context is not None and context.query is not None:
        context = PromptContext(classes=context.classes, query=QUERY_PLACEHOLDER)
    elif preset.variant == "grounding":
        context = PromptContext(query=QUERY_PLACEHOLDER)
    if preset.dialect != "coordjson":
        native = {"dialect": preset.dialect, "prompt": native_prompt(preset, context)}
        text = json.dumps(native, ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
    payload = {
        "ordering": preset.ordering,
        "coord_mode": preset.coord_mode,
        "prompt_variant": preset.variant,
        "object_field_order": preset.field_order,
        "bbox_format": preset.bbox_format,
        "system_prompt": system_prompt(preset),
        "user_prompt": user_prompt(preset, context),
        "do_resize": False,
    }
    # Python's default separators (", ", ": ") — the oracle hash depends on them.
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_messages(
    preset: PromptPreset, image: Any, context: PromptContext | None = None
) -> list[dict[str, Any]]:
    """Chat-template messages; user content order follows `preset.layout` [UP-MESSAGE-LAYOUT].

    Native-dialect presets send the family prompt alone, with the model's default system text.
    `context` is the sample's, from its task (the data set's class list).
    """
    native = preset.dialect != "coordjson"
    body = native_prompt(preset, context) if native else user_prompt(preset, context)
    text = {"type": "text", "text": body}
    img = {"type": "image", "image": image}
    content = [text, img] if preset.layout == "text_first" else [img, text]
    if native:
        return [{"role": "user", "content": content}]
    return [
        {"role": "system", "content": [{"type": "text", "text": system_prompt(preset)}]},
        {"role": "user", "content": content},
    ]


def render_target(objects: list[dict[str, Any]], preset: PromptPreset) -> str:
    """The expected assistant answer [UP-ANSWER-FORMAT], without the chat template's `<|im_end|>`.

    `objects`: `[{"desc": str, "bbox_2d": [4 ints in the preset's surface]}]`, already in the
    order wanted (upstream: sorted by (y1, x1)). Coord-token surfaces also accept the
    `"<|coord_k|>"` strings of a `.coord.jsonl`.
    """
    parts = []
    for i, obj in enumerate(objects):
        try:
            desc, box = obj["desc"], obj["bbox_2d"]
        except (KeyError, TypeError):
            raise DataError(
                f"object {i}: expected keys 'desc' and 'bbox_2d', got {obj!r}"
            ) from None
        if not isinstance(desc, str) or not isinstance(box, (list, tuple)) or len(box) != 4:
            raise DataError(f"object {i}: need a str desc and 4 bbox_2d values, got {obj!r}")
        try:
            parts.append(_render_object(desc, box, preset))
        except DataError as e:
            raise DataError(f"object {i}: {e}") from None
    return '{"objects": [' + ", ".join(parts) + "]}"


# --------------------------------------------------------------------------- rendering

# inclusive upper bound per surface; pixel has none here (the image size is not known)
_MAX_VALUE = {
    "coord_tokens": COORD_MAX,
    "norm1000_text": COORD_MAX,
    "rel1000": 1000,
    "pixel": math.inf,
}


def _render_coord(value: Any, coord_mode: str) -> str:
    if coord_mode == "coord_tokens" and isinstance(value, str):
        if parse_coord_token(value) is not None:
            return value
        raise DataError(f"not a coord token in [0,999]: {value!r}")
    hi = _MAX_VALUE[coord_mode]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise DataError(
            f"bbox_2d value {value!r} is not an int in [0, {hi}] for coord_mode {coord_mode!r}"
        )
    return coord_token(value) if coord_mode == "coord_tokens" else str(value)


def _render_object(desc: str, box: Any, preset: PromptPreset) -> str:
    """One CoordJSON record: JSON-quoted keys/desc, bare coordinates, key order per field order."""
    desc_part = '"desc": ' + json.dumps(desc, ensure_ascii=False)
    geom_part = '"bbox_2d": [' + ", ".join(_render_coord(v, preset.coord_mode) for v in box) + "]"
    first, second = (
        (desc_part, geom_part) if preset.field_order == "desc_first" else (geom_part, desc_part)
    )
    return "{" + first + ", " + second + "}"
