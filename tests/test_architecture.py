"""The package's shape holds: layers and cycles, torch-free imports, one owner for run-dir names,
and references that resolve inside the repository (docs/architecture.md, ARCH-LAYERS)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "coordbench"
HEAVY = ("torch", "transformers", "accelerate", "vllm", "peft")
RUN_DIR_NAMES = (
    "run.json",
    "gt_vs_pred.jsonl",
    "pred_token_trace.jsonl",
    "pred_confidence.jsonl",
    "gt_vs_pred_scored.jsonl",
    "confidence_postop_summary.json",
    "summary.json",
    "report.html",
    "metrics.json",
    "per_class.csv",
    "per_image.json",
    "coco_gt.json",
    "coco_preds.json",
    "semantic_desc_report.json",
    "matches.jsonl",
    "eval_original",
)


def _modules() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


def test_every_module_outside_backends_and_embedded_imports_without_torch():
    # backends/ modules that must stay light: what the pipeline and metrics import eagerly
    light_backends = {
        "coordbench.backends",
        "coordbench.backends.base",
        "coordbench.backends.hf_checkpoint",
        "coordbench.backends.registry",
        "coordbench.backends.replay",
        "coordbench.backends.text_encoder",
    }
    light = [
        m
        for m in _modules()
        if m in light_backends
        or (
            not m.startswith(("coordbench.backends", "coordbench.embedded"))
            and m != "coordbench.__main__"
        )
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {light!r}:\n"
        "    importlib.import_module(m)\n"
        f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "print(len(sys.modules), bad)\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(light) > 60


def test_no_import_cycles_between_modules():
    grimp = pytest.importorskip("grimp")  # import-linter's graph library (dev extra)
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph("coordbench", cache_dir=None)
    mods = [m for m in graph.modules if m.startswith("coordbench")]
    edges = {m: graph.find_modules_directly_imported_by(m) & set(mods) for m in mods}
    # Kahn's algorithm: whatever cannot be ordered sits on a cycle
    indeg = {m: 0 for m in mods}
    for m in mods:
        for dep in edges[m]:
            indeg[dep] += 1
    queue = [m for m, d in indeg.items() if d == 0]
    seen = 0
    while queue:
        m = queue.pop()
        seen += 1
        for dep in edges[m]:
            indeg[dep] -= 1
            if indeg[dep] == 0:
                queue.append(dep)
    on_cycles = sorted(m for m, d in indeg.items() if d > 0)
    assert seen == len(mods), f"modules on import cycles: {on_cycles}"


def test_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (dev extra)")
    out = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "BROKEN" not in out.stdout and out.stdout.count("KEPT") >= 3


def test_run_dir_file_names_are_written_only_in_the_layout_module():
    owner = PACKAGE / "rundir" / "layout.py"
    names = "|".join(re.escape(n) for n in RUN_DIR_NAMES)
    pattern = re.compile(rf"""["'](?:{names})["']""")
    offenders = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in sorted(PACKAGE.rglob("*.py"))
        if p != owner
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, "\n".join(offenders)


def _tracked_text_files() -> list[Path]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    names = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / n for n in names if n.endswith((".py", ".md", ".toml", ".cfg", ".txt"))]


def test_cited_ids_resolve_to_headings_in_docs():
    anchors = set()
    for doc in sorted(p.name for p in (ROOT / "docs").glob("*.md")):
        text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
        anchors |= {a.upper() for a in re.findall(r'<a id="([a-z0-9-]+)"></a>', text)}
    cited: dict[str, str] = {}
    for path in _tracked_text_files():
        for ref in re.findall(r"\[((?:UP|ARCH)-[A-Z0-9-]+)\]", path.read_text(encoding="utf-8")):
            cited.setdefault(ref, str(path.relative_to(ROOT)))
    assert len(cited) > 20
    missing = {ref: where for ref, where in cited.items() if ref not in anchors}
    assert not missing, missing


def test_no_reference_points_outside_the_repository():
    outside = re.compile(r"\.\./shared|/work/|shared/DESIGN|upstream_spec\.md|feasibility\.md|§")
    hits = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in _tracked_text_files()
        if p.name != "test_architecture.py"
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if outside.search(line)
    ]
    assert not hits, hits
