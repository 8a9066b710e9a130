"""report.html of a full run whose data, file names, run name and model text carry HTML/JS: every
one of them is shown as text, none becomes markup.

The oracle is the standard library's HTML parser: it sees exactly the tags and attributes a
browser would build, so an unescaped string shows up as a tag or an `on*` attribute.
"""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

from coordbench.config.run import RunConfig
from coordbench.pipeline.run import run
from tests.conftest import OracleBackend

GT_DESC = "<script>alert('gt')</script>"
GT_DESC_2 = "</style></title><img src=x onerror=alert(1)>"
PRED_DESC = "<iframe src=javascript:alert(3)></iframe>"
RAW_TEXT = '</pre><script>alert(2)</script><!-- " onmouseover=alert(4) x="'
FILE_NAME = "q\"'><svg onload=alert(5)>&amp;.jpg"
RUN_NAME = "<b onclick=alert(6)>run"
HOSTILE = (GT_DESC, GT_DESC_2, PRED_DESC, RAW_TEXT, FILE_NAME, RUN_NAME)
FORBIDDEN_TAGS = {"script", "iframe", "svg", "object", "embed", "base", "link", "form"}


class Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


class HostileBackend(OracleBackend):
    """Ground truth for most samples; raw markup for sample 3; an extra HTML-named box for 4."""

    def _text(self, idx, row):
        text, finish = super()._text(idx, row)
        if idx == 3:
            return RAW_TEXT, "stop"
        if idx == 4:
            extra = (
                '{"desc": "%s", '
                '"bbox_2d": [<|coord_100|>, <|coord_100|>, <|coord_300|>, <|coord_300|>]}'
            )
            text = text.replace('{"objects": [', '{"objects": [' + extra % PRED_DESC + ", ", 1)
        return text, finish


def _hostile_data(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    jsonl = dst / "val.coord.jsonl"
    rows = [json.loads(x) for x in jsonl.read_text().splitlines()]
    with_objects = [i for i, r in enumerate(rows) if r["objects"]]
    for i, desc in zip(with_objects[:2], (GT_DESC, GT_DESC_2), strict=True):
        for o in rows[i]["objects"]:
            o["desc"] = desc
    i = with_objects[2]
    rel = f"images/val/{FILE_NAME}"
    (dst / rows[i]["images"][0]).rename(dst / rel)
    rows[i]["images"] = [rel]
    rows[i]["file_name"] = rel
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return jsonl


def test_report_of_a_hostile_run_shows_everything_as_text(shapes_dir, tmp_path):
    data = _hostile_data(shapes_dir, tmp_path / "data")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    cfg = RunConfig(
        ckpt=str(ckpt),
        data=str(data),
        preset="64",
        prompt="default_desc_first",
        out=str(tmp_path / "runs"),
        name=RUN_NAME,
        batch_size=4,
        progress=False,
    )
    run(cfg, backend=HostileBackend(data))
    html = (tmp_path / "runs" / RUN_NAME / "report.html").read_text(encoding="utf-8")

    page = Page()
    page.feed(html)
    page.close()
    tags = [t for t, _ in page.tags]
    assert not FORBIDDEN_TAGS & set(tags), sorted(FORBIDDEN_TAGS & set(tags))
    assert tags.count("style") == 1  # the page's own inline CSS
    handlers = [(t, k) for t, attrs in page.tags for k in attrs if k.lower().startswith("on")]
    assert not handlers, handlers
    imgs = [a.get("src") or "" for t, a in page.tags if t == "img"]
    assert imgs and all(s.startswith("data:image/") for s in imgs), [s[:40] for s in imgs]
    assert all(a.get("href", "#").startswith("#") for t, a in page.tags if t == "a")
    # the page's own Content-Security-Policy is intact (nothing hostile closed the <head> early)
    csp = [
        a
        for t, a in page.tags
        if t == "meta" and a.get("http-equiv", "").lower() == "content-security-policy"
    ]
    assert len(csp) == 1 and "default-src 'none'" in csp[0]["content"]

    text = "".join(page.text)
    for s in (GT_DESC, GT_DESC_2, PRED_DESC, RAW_TEXT, RUN_NAME):
        assert s in text, f"{s!r} is not shown as text"
    assert FILE_NAME in text or FILE_NAME.replace("&amp;", "&") in text


def test_gallery_never_follows_absolute_or_escaping_image_paths(shapes_dir, tmp_path):
    """A tampered gt_vs_pred.jsonl must not make report.html embed files outside the data folder."""
    from coordbench.report.gallery import Outcome, render_image

    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    secret = tmp_path / "secret.jpg"
    shutil.copy(data / "images/val/00001.jpg", secret)  # a real, decodable image outside `data`
    oc = Outcome(pred=[], gt=[])
    base = {"width": 256, "height": 256, "gt": [], "pred": []}
    inside = render_image({**base, "image": "images/val/00001.jpg"}, data, oc)
    assert inside[3] is True  # the oracle that the image would be shown when allowed
    for rel in (str(secret), "../secret.jpg", "images/../../secret.jpg", "..\\secret.jpg"):
        _, _, path, found = render_image({**base, "image": rel}, data, oc)
        assert (path, found) == (None, False), rel
