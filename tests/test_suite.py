"""`coordbench suite`: the file, the cells, SLURM distribution, one load per checkpoint, the
report (fake backend, no model)."""

from __future__ import annotations

import pytest

from coordbench.config.run import Shard
from coordbench.config.suite import cell_name, distribute, load_suite
from coordbench.errors import ConfigError
from coordbench.pipeline import suite as S
from tests.conftest import OracleBackend


def _ckpt(tmp_path, name, weights=b"w"):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (d / "model.safetensors").write_bytes(weights)
    return d


def _suite_file(tmp_path, shapes_dir, body: str = "", ckpts=("a", "b"), copy_of=None):
    lines = [
        'name = "t"',
        "[defaults]",
        f'data = "{shapes_dir / "val.coord.jsonl"}"',
        'prompt = "default_desc_first"',
        "batch_size = 4",
    ]
    for i, c in enumerate(ckpts):
        weights = b"same" if copy_of and c in copy_of else f"w{i}".encode()
        _ckpt(tmp_path, c, weights)
        lines += ["[[checkpoints]]", f'name = "{c.upper()}"', f'ckpt = "{c}"']
    lines += [body or '[matrix]\npreset = ["64", "768"]']
    path = tmp_path / "suite.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cells_are_the_product_named_from_their_axes(tmp_path, shapes_dir):
    path = _suite_file(tmp_path, shapes_dir, '[matrix]\npreset = ["64", "768"]\nseed = [0, 1]')
    suite = load_suite(path)
    cells = suite.cells(tmp_path / "out")
    assert [c.name for c in cells[:4]] == [
        "A__preset-64__seed-0",
        "A__preset-64__seed-1",
        "A__preset-768__seed-0",
        "A__preset-768__seed-1",
    ]
    assert len(cells) == 8 and {c.checkpoint for c in cells[4:]} == {"B"}
    c = cells[3].config
    assert (c.preset, c.seed, c.batch_size, c.name) == ("768", 1, 4, "A__preset-768__seed-1")
    assert c.ckpt == str(tmp_path / "a")  # relative to the suite file
    assert c.out == str(tmp_path / "out")


def test_cell_names_are_one_safe_component():
    assert cell_name("my/ckpt", {"prompt": "../x", "temperature": 0.1}) == (
        "my-ckpt__prompt-x__temperature-0.1"
    )


@pytest.mark.parametrize(
    "body, match",
    [
        ("[matrix]\npreset = []", "non-empty list"),
        ("[matrix]\nbogus = [1]", "unknown run option 'bogus'"),
        ('[matrix]\nseed = ["x"]', "seed = 'x' has the wrong type"),
        ("[matrix]\nseed = [1, 1]", "appears twice"),
        ('[matrix]\ncheckpoint = ["a"]', "not an axis"),
        ('[report]\nfoo = 1\n[matrix]\npreset = ["64"]', r"\[report\]"),
    ],
)
def test_bad_suite_files_name_the_key(tmp_path, shapes_dir, body, match):
    with pytest.raises(ConfigError, match=match):
        load_suite(_suite_file(tmp_path, shapes_dir, body))


def test_a_checkpoint_override_may_not_also_be_an_axis(tmp_path, shapes_dir):
    path = _suite_file(tmp_path, shapes_dir, '[matrix]\nprompt = ["qwen25_pixel"]')
    path.write_text(path.read_text().replace('ckpt = "a"', 'ckpt = "a"\nprompt = "x"'))
    with pytest.raises(ConfigError, match="also a \\[matrix\\] axis"):
        load_suite(path)


def test_missing_or_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_suite(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("name = ")
    with pytest.raises(ConfigError, match="not a readable TOML"):
        load_suite(tmp_path / "bad.toml")


def test_a_users_folder_is_never_a_suite_dir(tmp_path, shapes_dir):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(ConfigError, match="not a suite dir"):
        S.plan_suite(_suite_file(tmp_path, shapes_dir), str(tmp_path / "mine"))


class _Cell:
    def __init__(self, name, checkpoint):
        self.name, self.checkpoint = name, checkpoint

    def __repr__(self):
        return self.name


def _cells(sizes):
    return [_Cell(f"{k}{i}", k) for k, n in sizes.items() for i in range(n)]


@pytest.mark.parametrize("sizes", [{"A": 2, "B": 2, "C": 2}, {"A": 5, "B": 1}, {"A": 1}])
@pytest.mark.parametrize("count", range(1, 9))
def test_every_cell_runs_exactly_once_in_a_fake_slurm_array(sizes, count):
    from coordbench.config.suite import assign_cells

    cells = _cells(sizes)
    got = []
    for lo in (0, 1):  # --array=0-N-1 and --array=1-N give the same shards
        got = []
        for task in range(lo, lo + count):
            env = {
                "SLURM_ARRAY_TASK_ID": str(task),
                "SLURM_ARRAY_TASK_MIN": str(lo),
                "SLURM_ARRAY_TASK_MAX": str(lo + count - 1),
            }
            got.append(assign_cells(cells, Shard.parse("auto", env)))
        flat = [c.name for part in got for c in part]
        assert sorted(flat) == sorted(c.name for c in cells)  # each cell exactly once
    if count <= len(sizes):  # a checkpoint's cells stay on one task
        for k in sizes:
            assert sum(any(c.checkpoint == k for c in part) for part in got) == 1
    else:  # as few tasks per checkpoint as the array allows: each task holds one checkpoint
        assert all(len({c.checkpoint for c in part}) <= 1 for part in got)


def test_whole_checkpoints_are_balanced():
    parts = distribute(_cells({"A": 4, "B": 1, "C": 1, "D": 2}), 2)
    assert [[c.name for c in p] for p in parts] == [
        ["A0", "A1", "A2", "A3"],
        ["B0", "C0", "D0", "D1"],
    ]


def _fake_backends(monkeypatch, shapes_dir):
    made, closed = [], []

    class Counting(OracleBackend):
        def close(self):
            closed.append(self)

    def make(cfg, dist):
        b = Counting(shapes_dir / "val.coord.jsonl")
        made.append(cfg.ckpt)
        return b

    monkeypatch.setattr(S, "make_backend", make)
    monkeypatch.setattr(S, "preflight_checkpoint", lambda cfg: None)
    return made, closed


def test_each_checkpoint_is_loaded_once_and_closed_after_its_cells(
    tmp_path, shapes_dir, monkeypatch
):
    monkeypatch.setenv("COORDBENCH_BENCHMARK_LOG", str(tmp_path / "log.jsonl"))
    made, closed = _fake_backends(monkeypatch, shapes_dir)
    suite, root, cells = S.plan_suite(_suite_file(tmp_path, shapes_dir), str(tmp_path / "out"))
    seen = []
    results = S.run_cells(cells, lambda c, r: seen.append((c.name, len(made), len(closed))))
    assert made == [str(tmp_path / "a"), str(tmp_path / "b")]
    # B's model is loaded only after A's was closed; A's two cells share one load
    assert seen == [("A__preset-64", 1, 0), ("A__preset-768", 1, 0), ("B__preset-64", 2, 1),
                    ("B__preset-768", 2, 1)]  # fmt: skip
    assert len(closed) == 2
    assert all(r["metrics"]["bbox_AP"] == pytest.approx(1.0) for r in results.values())
    # a second pass finds every cell finished and loads nothing
    again = S.run_cells(cells)
    assert all("already_complete" in r for r in again.values()) and len(made) == 2


def test_each_cell_reports_its_own_token_counts(tmp_path, shapes_dir, monkeypatch):
    from coordbench.rundir import files as A

    monkeypatch.setenv("COORDBENCH_BENCHMARK_LOG", str(tmp_path / "log.jsonl"))
    _fake_backends(monkeypatch, shapes_dir)

    plain = OracleBackend.generate

    def counted(self, batch, params):
        self.stats.decode_tokens += len(batch)
        return plain(self, batch, params)

    monkeypatch.setattr(OracleBackend, "generate", counted)
    _, _, cells = S.plan_suite(_suite_file(tmp_path, shapes_dir), str(tmp_path / "out"))
    S.run_cells(cells[:2])
    for c in cells[:2]:
        head = A.read_json(c.config.run_dir() / "run.json")
        assert head["provenance"]["sessions"][0]["generation"]["decode_tokens"] == 12


def test_a_failing_cell_does_not_stop_the_others(tmp_path, shapes_dir, monkeypatch):
    monkeypatch.setenv("COORDBENCH_BENCHMARK_LOG", str(tmp_path / "log.jsonl"))
    _fake_backends(monkeypatch, shapes_dir)
    _, root, cells = S.plan_suite(_suite_file(tmp_path, shapes_dir), str(tmp_path / "out"))
    blocker = cells[0].config.run_dir()
    blocker.mkdir(parents=True)
    (blocker / "notes.txt").write_text("a user's file")
    results = S.run_cells(cells)
    assert isinstance(results[cells[0].name], str)
    assert all(isinstance(results[c.name], dict) for c in cells[1:])
    assert (blocker / "notes.txt").read_text() == "a user's file"


def test_report_tables_deltas_and_caveats(tmp_path, shapes_dir, monkeypatch):
    from coordbench.compare.suite_report import to_csv, to_latex, to_markdown

    monkeypatch.setenv("COORDBENCH_BENCHMARK_LOG", str(tmp_path / "log.jsonl"))
    _fake_backends(monkeypatch, shapes_dir)
    path = _suite_file(tmp_path, shapes_dir, ckpts=("a", "b", "c"), copy_of=("a", "c"))
    suite, root, cells = S.plan_suite(path, str(tmp_path / "out"))
    S.run_cells([c for c in cells if c.name != "C__preset-768"])  # one cell left missing
    statuses = [S.cell_status(c) for c in cells]
    assert [s.state for s in statuses].count("missing") == 1
    res = S.build_report(suite, statuses, n_boot=50)
    assert [(t.axis, t.level) for t in res.tables] == [("preset", "64"), ("preset", "768")]
    assert [r.label for r in res.tables[0].rows] == ["A", "B", "C"]
    assert res.tables[0].rows[0].mean["mAP"] == pytest.approx(1.0)
    assert [(d.row, d.base_level, d.level) for d in res.deltas] == [
        ("A", "64", "768"),
        ("B", "64", "768"),
    ]
    assert res.deltas[0].deltas[0].delta == pytest.approx(0.0)
    text = " ".join(res.caveats)
    assert "checkpoints A and C have equal weights" in text
    assert "presets 64 and 768 produced identical images" in text
    assert "1 of 6 cells are not finished" in text and "C__preset-768 (missing)" in text
    assert any("same weights" in t for t in res.takeaways)
    md = to_markdown(res)
    assert (
        md.index("## Caveats")
        < md.index("## preset 64")
        < md.index("### A: Delta (preset 768 − 64)")
    )
    assert "| A | 4 | 1.0000 |" in md
    assert to_csv(res).splitlines()[0].startswith("section,row,axis,level")
    assert to_latex(res).count(r"\begin{table}") == 2
    paths = S.write_report(root, res, "t", ("csv", "json", "latex"))
    assert sorted(p.name for p in paths) == ["report.csv", "report.json", "report.md", "report.tex"]


def test_seeds_aggregate_as_mean_and_std(tmp_path, shapes_dir, monkeypatch):
    from coordbench.compare.load import load_run
    from coordbench.compare.pivot import PivotCell, build_pivot, pick_metrics
    from coordbench.tasks import get_task

    monkeypatch.setenv("COORDBENCH_BENCHMARK_LOG", str(tmp_path / "log.jsonl"))
    made, _ = _fake_backends(monkeypatch, shapes_dir)
    path = _suite_file(
        tmp_path, shapes_dir, '[matrix]\npreset = ["64"]\nseed = [0, 1]', ckpts=("a",)
    )
    suite, root, cells = S.plan_suite(path, str(tmp_path / "out"))
    S.run_cells(cells)
    runs = [load_run(c.config.run_dir()) for c in cells]
    # stand-in metrics: the two seeds scored 0.2 and 0.4 -> 0.3 ± 0.1414 (ddof 1)
    runs[0].metrics["bbox_AP"], runs[1].metrics["bbox_AP"] = 0.2, 0.4
    pcells = [
        PivotCell(
            c.name, {"checkpoint": "A", "preset": "64", "seed": str(c.axes["seed"])}, c.name, run=r
        )
        for c, r in zip(cells, runs, strict=True)
    ]
    specs = pick_metrics(get_task("detection"))
    res = build_pivot(pcells, "checkpoint", ["preset", "seed"], specs, n_boot=0)
    row = res.tables[0].rows[0]
    assert row.label == "A" and row.mean["mAP"] == pytest.approx(0.3)
    assert row.std["mAP"] == pytest.approx(0.1414213562, abs=1e-9)
    assert res.deltas == []  # one preset: nothing to compare; seeds are aggregated, not deltas


def test_compare_pivot_from_identities_and_plain_pair_caveat(tmp_path, shapes_dir, monkeypatch):
    from click.testing import CliRunner

    from coordbench.cli.main import main

    monkeypatch.setenv("COORDBENCH_BENCHMARK_LOG", str(tmp_path / "log.jsonl"))
    _fake_backends(monkeypatch, shapes_dir)
    path = _suite_file(tmp_path, shapes_dir, ckpts=("a", "c"), copy_of=("a", "c"))
    _, _, cells = S.plan_suite(path, str(tmp_path / "out"))
    S.run_cells(cells)
    dirs = [str(c.config.run_dir()) for c in cells]
    out = CliRunner().invoke(
        main, ["compare", *dirs, "--rows", "checkpoint", "--cols", "preset", "--n-boot", "20"]
    )
    assert out.exit_code == 0, out.output
    assert "## preset 64" in out.output and "## preset 768" in out.output
    assert "| a | 4 |" in out.output and "checkpoints a and c have equal weights" in out.output
    pair = CliRunner().invoke(main, ["compare", dirs[0], dirs[2], "--n-boot", "0", "--no-log"])
    assert "use checkpoints with equal weights" in pair.output
    bad = CliRunner().invoke(main, ["compare", *dirs, "--rows", "checkpoint"])
    assert bad.exit_code == 2 and "--rows and --cols go together" in bad.output


def test_plan_lists_cells_and_what_is_done(tmp_path, shapes_dir, monkeypatch):
    from click.testing import CliRunner

    from coordbench.cli.main import main

    monkeypatch.setenv("COORDBENCH_BENCHMARK_LOG", str(tmp_path / "log.jsonl"))
    _fake_backends(monkeypatch, shapes_dir)
    path = _suite_file(tmp_path, shapes_dir)
    suite, root, cells = S.plan_suite(path, str(tmp_path / "out"))
    S.write_suite_json(suite, root, [])
    S.run_cells(cells[:1])
    out = CliRunner().invoke(main, ["suite", str(path), "--out", str(tmp_path / "out"), "--plan"])
    assert out.exit_code == 0, out.output
    assert "4 cells (1 done)" in out.output
    assert "A__preset-64   done     12 samples" in out.output
    assert "B__preset-768  missing  0/12 samples" in out.output
    rep = CliRunner().invoke(
        main, ["suite", str(path), "--out", str(tmp_path / "out"), "--report", "--n-boot", "0"]
    )
    assert rep.exit_code == 0 and "missing cells (3)" in rep.output
    assert (tmp_path / "out" / "report.md").is_file() and (
        tmp_path / "out" / "suite.json"
    ).is_file()
