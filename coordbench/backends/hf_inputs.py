"""Requests -> left-padded model inputs, with the processor-resize guard [UP-PROCESSOR-RESIZE] and
the validation of generation parameters (shared with the vLLM backend; no torch import here).

Preset images are already resized for the checkpoint (multiples of patch x merge, within its
pixel budget); if the processor resized one again, the boxes the model prints would be in another
frame than the ground truth. Upstream never checked; we fail loudly instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coordbench.backends.hf_family import FAMILIES, Family
from coordbench.config.options import GenerationParams
from coordbench.errors import BackendError
from coordbench.types import GenerationRequest


def split_messages(
    messages: list[dict[str, Any]], image: Any = None
) -> tuple[list[dict], list[Any]]:
    """(messages for the chat template with images as placeholders, images in prompt order).

    An image item without an "image" value takes the request's `image`.
    """
    rendered, images = [], []
    for msg in messages:
        content = msg.get("content")
        if not isinstance(content, list):
            rendered.append(dict(msg))
            continue
        items = []
        for item in content:
            if isinstance(item, dict) and item.get("type") == "image":
                img = item.get("image", image)
                if img is None:
                    raise BackendError("an image item in the messages has no image")
                images.append(img)
                items.append({"type": "image"})
            else:
                items.append(item)
        rendered.append({**msg, "content": items})
    return rendered, images


def check_grid(
    sizes_wh: Sequence[tuple[int, int]],
    grid_thw: Sequence[Sequence[int]],
    patch: int,
    merge: int,
    where: Sequence[str] | None = None,
) -> None:
    """Raise if a vision grid (in patches) does not reproduce its image's width x height."""
    if len(sizes_wh) != len(grid_thw):
        raise BackendError(
            f"processor returned {len(grid_thw)} vision grids for {len(sizes_wh)} images"
        )
    for i, ((w, h), (_, gh, gw)) in enumerate(zip(sizes_wh, grid_thw, strict=True)):
        if (int(gw) * patch, int(gh) * patch) != (w, h):
            prefix = f"sample {where[i]}: " if where else ""
            raise BackendError(
                f"{prefix}processor resized image {w}x{h} to {int(gw) * patch}x{int(gh) * patch} "
                f"(patch {patch}, merge {merge}): images must be multiples of {patch * merge} for "
                "this checkpoint (within its min/max pixels), or use a preset built for it"
            )


def patch_merge(image_processor) -> tuple[int, int]:
    patch = image_processor.patch_size
    patch = patch[0] if isinstance(patch, (list, tuple)) else patch
    return int(patch), int(getattr(image_processor, "merge_size", 1) or 1)


def expected_grid(image_processor, width: int, height: int) -> tuple[int, int, int]:
    """The (t, h, w) patch grid the processor gives a width x height image
    (runs it on a blank one)."""
    from PIL import Image

    out = image_processor(images=[Image.new("RGB", (width, height))], return_tensors="np")
    t, h, w = (int(x) for x in out["image_grid_thw"][0])
    return t, h, w


def render_prompts(
    tokenizer,
    template: str | None,
    requests: Sequence[GenerationRequest],
    family: Family | None = None,
):
    """(prompt strings, images per request) via the checkpoint's chat template, or for a family
    without one (PaliGemma) its image placeholders followed by the request's texts."""
    prompts, images = [], []
    for req in requests:
        msgs, imgs = split_messages(req.messages, req.image)
        if family is not None and not family.chat_template:
            prompts.append(family.image_placeholder * len(imgs) + bare_text(msgs))
            images.append(imgs)
            continue
        try:
            text = tokenizer.apply_chat_template(
                msgs, chat_template=template, tokenize=False, add_generation_prompt=True
            )
        except Exception as exc:  # jinja errors come in many types; name the sample
            raise BackendError(f"sample {req.sample_id}: chat template failed: {exc}") from exc
        prompts.append(text)
        images.append(imgs)
    return prompts, images


def bare_text(messages: list[dict[str, Any]]) -> str:
    """The text items of every message, in order, joined by newlines (a template-free prompt)."""
    parts = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [i["text"] for i in content if isinstance(i, dict) and i.get("type") == "text"]
    return "\n".join(p for p in parts if p)


def build_inputs(
    processor,
    template: str | None,
    requests: Sequence[GenerationRequest],
    device: str,
    dtype,
    check_resize: bool = True,
    family: Family | None = None,
) -> dict[str, Any]:
    """Left-padded processor outputs on `device`, after the resize guard (Qwen only)."""
    family = family or FAMILIES["qwen2_5_vl"]
    prompts, images = render_prompts(processor.tokenizer, template, requests, family)
    flat = [img for imgs in images for img in imgs]
    kwargs: dict[str, Any] = {"text": prompts, "return_tensors": "pt", "padding": True}
    bos = processor.tokenizer.bos_token
    # A template that writes BOS itself (Gemma 3) must not get a second one from the tokenizer;
    # transformers' processor `apply_chat_template` makes the same test.
    if family.chat_template and bos and all(p.startswith(bos) for p in prompts):
        kwargs["add_special_tokens"] = False
    if flat:
        kwargs["images"] = images if family.nested_images else flat
    inputs = processor(**kwargs)
    if flat and check_resize and family.resize_guard:
        patch, merge = patch_merge(processor.image_processor)
        where = [r.sample_id for r, imgs in zip(requests, images, strict=True) for _ in imgs]
        check_grid(
            [img.size for img in flat], inputs["image_grid_thw"].tolist(), patch, merge, where
        )
    out = {
        k: v.to(device)
        for k, v in inputs.items()
        if hasattr(v, "to") and k not in family.drop_inputs
    }
    if "pixel_values" in out:
        out["pixel_values"] = out["pixel_values"].to(dtype)
    return out


def validate_params(params: GenerationParams) -> None:
    """Reject parameters the decoder cannot honour, naming the field."""
    params.check(BackendError)
