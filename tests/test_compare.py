"""compare_runs on synthetic run dirs: deltas, paired bootstrap, caveats, groups, top changes."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from coordbench.compare.core import compare_runs
from coordbench.compare.metrics import METRICS, metric_value
from coordbench.errors import ArtifactError, ConfigError
from coordbench.rundir import files as A
from tests.test_compare_fixtures import (
    drop_half,
    make_run,
    make_samples,
    noisy_predictor,
    scored_metrics,
)

N_BOOT = 200


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """a: noisy predictor; a_s1: the same predictor, another seed;
    crippled: a's boxes, every second dropped."""
    root = tmp_path_factory.mktemp("runs")
    samples = make_samples(60)
    preds = noisy_predictor(samples, 1)
    return {
        "root": root,
        "samples": samples,
        "a": make_run(root, "a", samples, preds),
        "a_s1": make_run(root, "a_s1", samples, noisy_predictor(samples, 2), identity={"seed": 1}),
        "crippled": make_run(
            root,
            "crippled",
            samples,
            drop_half(preds),
            identity={"checkpoint": {"sha256": "c" * 64, "path_name": "ckpt-c"}},
        ),
    }


def _own(run_dir, label):
    spec = next(s for s in METRICS if s.label == label)
    summary = A.read_json(run_dir / A.SUMMARY)
    prov = A.read_json(run_dir / A.RUN_JSON)["provenance"]
    metrics = {**A.read_json(run_dir / "eval/metrics.json")["metrics"], **summary["metrics"]}
    return metric_value(spec, metrics, summary["parse"]["rates"], prov)


def test_deltas_equal_the_differences_of_each_runs_own_metrics(runs):
    res = compare_runs([runs["a"], runs["crippled"]], n_boot=N_BOOT)
    assert res.baseline == "a"
    checked = 0
    for row in res.pairs[0].deltas:
        va, vb = _own(runs["a"], row.metric), _own(runs["crippled"], row.metric)
        assert row.baseline == va and row.value == vb, row.metric
        if va is None or vb is None:
            assert row.delta is None
            continue
        assert row.delta == pytest.approx(vb - va, abs=1e-12)
        if va:
            assert row.delta_pct == pytest.approx(100 * (vb - va) / abs(va))
        checked += 1
    assert checked >= 15
    # The per-run table shows each run's own numbers too.
    assert res.value("crippled", "mAP") == _own(runs["crippled"], "mAP")


def test_bootstrap_point_estimates_match_the_summary(runs):
    """The bootstrap resamples the same per-image counts the summary was computed from."""
    from coordbench.compare.load import load_run
    from coordbench.compare.stats import count_table, paired_bootstrap_counts, resample_counts

    a, b = load_run(runs["a"]), load_run(runs["crippled"])
    keys = list(a.samples)
    cis = paired_bootstrap_counts(
        count_table(a, keys),
        count_table(b, keys),
        ["F1@0.5", "F1loc@0.3", "pred_total"],
        resample_counts(len(keys), 50, 0),
    )
    assert cis["F1@0.5"].value_a == pytest.approx(_own(runs["a"], "F1@0.5"), abs=1e-12)
    assert cis["F1loc@0.3"].value_b == pytest.approx(_own(runs["crippled"], "F1loc@0.3"), abs=1e-12)
    assert cis["pred_total"].value_b == _own(runs["crippled"], "pred_total")


def test_two_seeds_of_one_noisy_predictor_are_within_noise(runs):
    res = compare_runs([runs["a"], runs["a_s1"]], n_boot=N_BOOT)
    for m in ("mAP", "AP50", "AR100", "F1@0.5", "F1loc@0.5", "F1@0.3", "pred_total"):
        row = res.delta("a_s1", m)
        assert row.ci_low < 0 < row.ci_high, (m, row)
        assert row.verdict == "within noise"
        assert row.ci_low <= row.delta <= row.ci_high


def test_a_crippled_predictor_is_worse_beyond_noise(runs):
    res = compare_runs([runs["a"], runs["crippled"]], n_boot=N_BOOT)
    for m in ("mAP", "AP50", "AR10", "F1@0.5", "F1loc@0.5", "F1@0.3"):
        row = res.delta("crippled", m)
        assert row.ci_high < 0 and row.verdict == "worse", (m, row)
    assert (
        res.delta("crippled", "pred_total").verdict == "lower"
    )  # neither better nor worse by itself
    # The other way round it is better.
    rev = compare_runs([runs["crippled"], runs["a"]], n_boot=N_BOOT, metrics=["mAP", "F1@0.5"])
    assert (
        rev.delta("a", "F1@0.5").verdict == "better" and rev.delta("a", "mAP").verdict == "better"
    )


def test_bootstrap_is_seeded(runs):
    def cis(seed):
        res = compare_runs(
            [runs["a"], runs["a_s1"]], n_boot=N_BOOT, seed=seed, metrics=["AP50", "F1@0.5"]
        )
        return [(d.ci_low, d.ci_high) for d in res.pairs[0].deltas]

    first, again, other = cis(3), cis(3), cis(4)
    assert first == again
    assert all(x != y for x, y in zip(first, other, strict=True))


def test_bootstrap_ci_matches_a_naive_paired_resampling(runs):
    """Independent oracle: resample image indices with numpy and recompute micro F1 per resample."""
    from coordbench.compare.load import load_run

    a, b = load_run(runs["a"]), load_run(runs["crippled"])
    keys = list(a.samples)

    def counts(r):
        return np.array(
            [
                [r.per_image[k]["f1ish"]["0.50"][c] for c in ("tp_full", "fp_full", "fn_full")]
                for k in keys
            ]
        )

    ca, cb = counts(a), counts(b)
    rng = np.random.default_rng(0)
    deltas = []
    for _ in range(2000):
        idx = rng.integers(0, len(keys), len(keys))
        f = [
            2 * c[idx, 0].sum() / (2 * c[idx, 0].sum() + c[idx, 1].sum() + c[idx, 2].sum())
            for c in (ca, cb)
        ]
        deltas.append(f[1] - f[0])
    lo, hi = np.quantile(deltas, [0.025, 0.975])
    res = compare_runs([runs["a"], runs["crippled"]], n_boot=2000, metrics=["F1@0.5"])
    row = res.delta("crippled", "F1@0.5")
    assert row.ci_low == pytest.approx(lo, abs=0.01) and row.ci_high == pytest.approx(hi, abs=0.01)


def test_comparing_a_run_with_itself(runs):
    res = compare_runs(
        [runs["a"], runs["a"]], n_boot=N_BOOT, metrics=["mAP", "F1@0.5", "parse.ok_rate"]
    )
    assert any("same run dir" in c for c in res.caveats)
    assert len({r.name for r in res.runs}) == 2  # both shown, under distinct names
    for row in res.pairs[0].deltas:
        assert row.delta in (0, None)
        assert row.verdict in ("within noise", "n/a")


def test_a_rerun_with_the_same_identity_is_flagged(runs, tmp_path):
    copy = tmp_path / "a_again"
    shutil.copytree(runs["a"], copy)
    res = compare_runs([runs["a"], copy], n_boot=0)
    assert any("same identity" in c and "nondeterminism" in c for c in res.caveats)


def test_different_sample_sets_compare_the_intersection(runs, tmp_path):
    samples = runs["samples"]
    preds = noisy_predictor(samples, 1)
    part = make_run(tmp_path, "part", samples[20:], drop_half(preds[20:]))
    res = compare_runs([runs["a"], part], n_boot=20)  # point estimates do not depend on n_boot
    pair = res.pairs[0]
    assert (pair.n_baseline, pair.n_run, pair.n_shared) == (60, 40, 40)
    assert any("only the 40 samples shared" in c for c in res.caveats)
    shared = {s["sample_id"] for s in samples[20:]}
    oracle_a = scored_metrics(runs["a"], shared)["f1ish@0.50_f1_full_micro"]
    oracle_b = scored_metrics(part, shared)["f1ish@0.50_f1_full_micro"]
    row = res.delta("part", "F1@0.5")
    assert row.baseline == pytest.approx(oracle_a, abs=1e-12) and row.value == pytest.approx(
        oracle_b, abs=1e-12
    )
    assert row.delta == pytest.approx(oracle_b - oracle_a, abs=1e-12)
    # COCO on the shared subset: the weighted resampler equals a fresh evaluation of the subset
    for label, key in (("mAP", "bbox_AP"), ("AR1", "bbox_AR1"), ("APl", "bbox_APl")):
        row = res.delta("part", label)
        assert row.baseline == pytest.approx(scored_metrics(runs["a"], shared)[key], abs=1e-9), (
            label
        )
        assert row.value == pytest.approx(scored_metrics(part, shared)[key], abs=1e-9), label
    # without resamples the deltas are still taken on the shared samples, just without CIs
    no_boot = compare_runs([runs["a"], part], n_boot=0, metrics=["mAP", "F1@0.5"])
    for label in ("mAP", "F1@0.5"):
        assert no_boot.delta("part", label).delta == pytest.approx(
            res.delta("part", label).delta, abs=1e-12
        )
        assert no_boot.delta("part", label).ci_low is None


def test_disjoint_sample_sets_give_no_deltas(runs, tmp_path):
    samples = make_samples(10, seed=9)
    other = make_run(
        tmp_path,
        "other",
        [{**s, "sample_id": "x" + s["sample_id"]} for s in samples],
        noisy_predictor(samples, 1),
    )
    res = compare_runs([runs["a"], other], n_boot=0)
    assert res.pairs[0].deltas == [] and res.pairs[0].n_shared == 0
    assert any("share no samples" in c for c in res.caveats)


def test_partial_runs_are_reported_and_left_out(runs, tmp_path):
    samples = runs["samples"]
    running = make_run(
        tmp_path,
        "running",
        samples[:5],
        noisy_predictor(samples[:5], 1),
        summary=False,
        finished=False,
    )
    killed = make_run(tmp_path, "killed", samples, noisy_predictor(samples, 1), finished=False)
    res = compare_runs([running, runs["a"], killed], n_boot=0)
    assert res.baseline == "a"  # the first complete run
    assert any("running is partial" in c and "no summary.json (5 samples" in c for c in res.caveats)
    assert any("killed is partial" in c and "finished_at" in c for c in res.caveats)
    assert [p.run for p in res.pairs] == ["killed"]  # has numbers (stale?), so still compared
    assert res.value("running", "mAP") is None
    with pytest.raises(ConfigError, match="partial"):
        compare_runs([running, runs["a"]], baseline="running")


def test_a_path_that_is_not_a_run_dir_is_named(runs, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="empty is not a run dir"):
        compare_runs([runs["a"], tmp_path / "empty"])
    with pytest.raises(ArtifactError, match="run dir not found: .*nope"):
        compare_runs([tmp_path / "nope"])
    with pytest.raises(ConfigError, match="--baseline 'zzz' is none of"):
        compare_runs([runs["a"]], baseline="zzz")


def test_summary_json_path_is_accepted(runs):
    res = compare_runs([runs["a"] / "summary.json", runs["crippled"]], n_boot=0)
    assert res.baseline == "a" and res.pairs[0].run == "crippled"


def test_more_than_one_differing_axis_is_a_caveat(runs, tmp_path):
    samples, preds = runs["samples"], noisy_predictor(runs["samples"], 1)
    two = make_run(
        tmp_path,
        "two",
        samples,
        preds,
        identity={"checkpoint": {"sha256": "e" * 64}, "decode": {"temperature": 0.7}},
    )
    one = make_run(tmp_path, "one", samples, preds, identity={"decode": {"temperature": 0.7}})
    bs = make_run(tmp_path, "bs", samples, preds, batch_size=1)
    res = compare_runs([runs["a"], two, one, bs], n_boot=0)
    multi = [c for c in res.caveats if "differs from a in" in c]
    assert len(multi) == 1 and "two differs from a in 2 axes (checkpoint, decode)" in multi[0]
    assert "decode.temperature 0.0 → 0.7" in multi[0]
    assert any("batch size differs (a 8, bs 1)" in c for c in res.caveats)
    one_pair = next(p for p in res.pairs if p.run == "one")
    assert one_pair.about == "one vs a: decode.temperature 0.0 → 0.7"


def test_identical_images_under_two_presets(runs, tmp_path):
    samples, preds = runs["samples"], noisy_predictor(runs["samples"], 1)
    p1024 = {"preset": "1024", "dataset": {"path_name": "val1024.coord.jsonl", "sha256": "f" * 64}}
    same = make_run(tmp_path, "same", samples, preds, identity=p1024)
    bigger = [{**s, "width": 1280, "height": 960} for s in samples]
    grown = make_run(tmp_path, "grown", bigger, preds, identity=p1024)
    res = compare_runs([runs["a"], same, grown], n_boot=0)
    hits = [c for c in res.caveats if "presets produced identical images" in c]
    assert len(hits) == 1 and hits[0].startswith(
        "768 and 1024 presets produced identical images on this dataset"
    )
    assert "640x480" in hits[0]
    # the preset's own dataset file is not counted as a second axis
    assert not any("differs from a in" in c for c in res.caveats)


def test_throughput_caveat_for_different_launch_shapes(runs, tmp_path):
    samples, preds = runs["samples"], noisy_predictor(runs["samples"], 1)
    wide = make_run(tmp_path, "wide", samples, preds, provenance={"world_size": 8})
    res = compare_runs([runs["a"], wide], n_boot=0)
    assert any(
        "not comparable across launch shapes" in c
        and "change throughput, not the model" in c
        and "pitfall" not in c
        for c in res.caveats
    )


def test_seed_groups_mean_std_and_group_test(tmp_path):
    samples = make_samples(30)
    paths = []
    for ck, keep in (("good", 0.9), ("bad", 0.5)):
        for seed in range(3):
            ident = {"seed": seed, "checkpoint": {"path_name": ck, "sha256": ck * 8}}
            paths.append(
                make_run(
                    tmp_path,
                    f"{ck}_s{seed}",
                    samples,
                    noisy_predictor(samples, seed, keep=keep),
                    identity=ident,
                )
            )
    res = compare_runs(paths, n_boot=0)
    assert [g.n for g in res.groups] == [3, 3]
    good = next(g for g in res.groups if "good_s0" in g.members)
    assert good.label == "good [seed ×3]" and good.axis_values == ["0", "1", "2"]
    vals = [_own(p, "F1@0.5") for p in paths[:3]]
    assert good.mean["F1@0.5"] == pytest.approx(np.mean(vals)) and good.std[
        "F1@0.5"
    ] == pytest.approx(np.std(vals, ddof=1))
    # seeds inside a group are expected to differ: no multi-axis caveat for bad_s1 vs good_s0
    assert not any("differs from good_s0 in" in c for c in res.caveats)
    row = next(d for d in res.group_deltas if d.metric == "F1@0.5")
    assert row.test == "paired t" and row.delta == pytest.approx(
        res.groups[1].mean["F1@0.5"] - good.mean["F1@0.5"]
    )
    from scipy import stats

    bad_vals = [_own(p, "F1@0.5") for p in paths[3:]]
    assert row.p_value == pytest.approx(stats.ttest_rel(bad_vals, vals).pvalue)
    assert row.verdict == ("worse" if row.p_value < 0.05 else "within noise")


def test_group_by_dataset_is_a_leave_one_group_out_summary(tmp_path):
    paths = []
    for fold in range(3):
        samples = make_samples(12, seed=fold)
        ident = {"dataset": {"path_name": f"fold{fold}.jsonl", "sha256": str(fold) * 64}}
        paths.append(
            make_run(
                tmp_path, f"m_fold{fold}", samples, noisy_predictor(samples, 1), identity=ident
            )
        )
    res = compare_runs(paths, n_boot=0, group_by="dataset")
    assert len(res.groups) == 1 and res.groups[0].n == 3
    assert res.groups[0].axis_values == ["fold0.jsonl", "fold1.jsonl", "fold2.jsonl"]
    maps = [_own(p, "mAP") for p in paths]
    assert res.groups[0].mean["mAP"] == pytest.approx(np.mean(maps))


def test_per_class_and_per_image_top_changes(tmp_path):
    samples = make_samples(20)
    preds = noisy_predictor(samples, 1, keep=1.0, jitter=0, wrong_class=0.0, extra=0.0)  # perfect
    worse = [
        p if i not in (3, 7) else [] for i, p in enumerate(preds)
    ]  # nothing found on samples 3 and 7
    a = make_run(tmp_path, "a", samples, preds)
    b = make_run(tmp_path, "b", samples, worse)
    res = compare_runs([a, b], n_boot=0, top_k=5)
    pair = res.pairs[0]
    assert pair.per_image_gains == []
    lost = {i.sample: i for i in pair.per_image_losses}
    assert set(lost) == {samples[3]["sample_id"], samples[7]["sample_id"]}
    for i in (3, 7):
        row = lost[samples[i]["sample_id"]]
        assert (
            row.tp_baseline == len(samples[i]["gt"])
            and row.tp_run == 0
            and row.delta == -len(samples[i]["gt"])
        )
    # the larger loss comes first
    assert [r.delta for r in pair.per_image_losses] == sorted(
        r.delta for r in pair.per_image_losses
    )
    per_class = A.read_json(b / "eval/metrics.json")["per_class_ap"]
    for c in pair.per_class_losses:
        assert c.ap_baseline == pytest.approx(1.0) and c.ap_run == pytest.approx(
            per_class[c.category]
        )
        assert c.n_gt == sum(g["desc"] == c.category for s in samples for g in s["gt"])
    assert all(c.delta < 0 for c in pair.per_class_losses) and pair.per_class_gains == []


def test_missing_coco_area_is_not_a_number(runs):
    """pycocotools' -1 (no GT in an area range) shows as missing, not as a score of -1."""
    res = compare_runs([runs["a"]], n_boot=0)
    assert A.read_json(runs["a"] / A.SUMMARY)["metrics"]["bbox_APs"] == -1
    assert res.value("a", "APs") is None
    assert not math.isnan(res.value("a", "mAP"))


def test_package_version_and_prompt_changes_are_named(runs, tmp_path):
    samples, preds = runs["samples"], noisy_predictor(runs["samples"], 1)
    ident = {"package_version": "0.2.0", "prompt": {"template_hash": "1" * 64}}
    other = make_run(tmp_path, "other", samples, preds, identity=ident)
    (cav,) = [
        c for c in compare_runs([runs["a"], other], n_boot=0).caveats if "differs from a" in c
    ]
    assert "2 axes (package_version, prompt)" in cav and "package_version 0.1.0 → 0.2.0" in cav


def test_an_upstream_run_dir_without_run_json(runs, tmp_path):
    up = tmp_path / "upstream"
    shutil.copytree(runs["crippled"], up)
    (up / "run.json").unlink()
    res = compare_runs([runs["a"], up], n_boot=N_BOOT, metrics=["F1@0.5"])
    assert any("upstream: no run.json: identity unknown" in c for c in res.caveats)
    assert res.delta("upstream", "F1@0.5").verdict == "worse"


def test_cis_come_from_the_metrics_librarys_paired_bootstrap(runs):
    from coordbench.metrics.bootstrap import paired_bootstrap

    lib = paired_bootstrap(
        runs["a"] / "eval",
        runs["crippled"] / "eval",
        n=N_BOOT,
        seed=5,
        metrics=("bbox_AP", "f1ish@0.50_f1_full_micro"),
    )["metrics"]
    res = compare_runs(
        [runs["a"], runs["crippled"]], n_boot=N_BOOT, seed=5, metrics=["mAP", "F1@0.5"]
    )
    for label, key in (("mAP", "bbox_AP"), ("F1@0.5", "f1ish@0.50_f1_full_micro")):
        row = res.delta("crippled", label)
        assert (row.ci_low, row.ci_high) == (lib[key]["ci_low"], lib[key]["ci_high"])


def test_without_the_library_f1_falls_back_and_coco_says_why(runs, monkeypatch):
    from coordbench.compare import boot as compare_boot

    monkeypatch.setattr(compare_boot, "library_available", lambda: False)
    res = compare_runs([runs["a"], runs["crippled"]], n_boot=N_BOOT, metrics=["mAP", "F1@0.5"])
    assert res.delta("crippled", "F1@0.5").verdict == "worse"
    assert (
        res.delta("crippled", "mAP").ci_low is None
        and res.delta("crippled", "mAP").verdict == "n/a"
    )
    assert any("COCO AP/AR: no confidence intervals" in n for n in res.pairs[0].notes)


def test_reruns_are_not_seed_replicates_and_are_flagged_anywhere(runs, tmp_path):
    rerun = tmp_path / "crippled_again"
    shutil.copytree(runs["crippled"], rerun)
    res = compare_runs([runs["a"], runs["crippled"], rerun], n_boot=0)
    assert res.groups == []  # one seed value twice is not a seed group
    assert any(
        c.startswith("crippled_again has the same identity as crippled (a re-run")
        for c in res.caveats
    )


def test_the_group_axis_is_expected_only_between_grouped_runs(runs, tmp_path):
    samples, preds = runs["samples"], noisy_predictor(runs["samples"], 3)
    hot = {"decode": {"temperature": 0.7}}
    s1 = make_run(tmp_path, "hot_s1", samples, preds, identity={**hot, "seed": 1})
    s2 = make_run(tmp_path, "hot_s2", samples, preds, identity={**hot, "seed": 2})
    warm = make_run(tmp_path, "warm", samples, preds, identity={"decode": {"temperature": 0.3}})
    res = compare_runs([warm, s1, s2], n_boot=0)
    assert [g.members for g in res.groups] == [["hot_s1", "hot_s2"]]
    # warm (sampled, seed 0) is in no group: against it, the seed is a second axis
    assert any("hot_s1 differs from warm in 2 axes (decode, seed)" in c for c in res.caveats)
    res = compare_runs([runs["a"], runs["a_s1"], s1, s2], n_boot=0)
    assert not any(
        "differs from a in" in c for c in res.caveats
    )  # both sides grouped: compare the means
    assert (
        res.group_deltas and res.group_deltas[0].test == "Welch t"
    )  # seeds {0, 1} vs {1, 2}: unpaired


def test_seed_is_no_axis_of_its_own_next_to_a_greedy_run(runs, tmp_path):
    samples, preds = runs["samples"], noisy_predictor(runs["samples"], 4)
    hot = make_run(
        tmp_path, "hot", samples, preds, identity={"decode": {"temperature": 0.7}, "seed": 3}
    )
    hot2 = make_run(
        tmp_path,
        "hot2",
        samples,
        preds,
        identity={"decode": {"temperature": 0.7}, "seed": 4, "checkpoint": {"sha256": "9" * 64}},
    )
    res = compare_runs([runs["a"], hot], n_boot=0)  # greedy a vs sampled hot: one axis (decode)
    assert not any("differs from" in c for c in res.caveats)
    res = compare_runs([hot, hot2], n_boot=0)  # both sampled: the seed is a second axis
    assert any("hot2 differs from hot in 2 axes (checkpoint, seed)" in c for c in res.caveats)


def test_a_rescored_dir_without_gt_vs_pred_is_keyed_by_its_scored_records(runs, tmp_path):
    rescored = tmp_path / "rescored"
    shutil.copytree(runs["crippled"], rescored)
    (rescored / "gt_vs_pred.jsonl").unlink()
    res = compare_runs([runs["a"], rescored], n_boot=0)
    assert res.pairs[0].n_shared == 60
    assert res.delta("rescored", "F1@0.5").delta == res.delta(
        "rescored", "F1@0.5"
    ).value - res.value("a", "F1@0.5")


def _coco_stats_on_multiset(eval_dir, counts):
    """Oracle: pycocotools on the image multiset
    (image i copied counts[i] times, copies renamed)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, preds = A.read_json(eval_dir / "coco_gt.json"), A.read_json(eval_dir / "coco_preds.json")
    ids = sorted(im["id"] for im in gt["images"])
    data = {"images": [], "annotations": [], "categories": gt["categories"]}
    dets = []
    for i, im_id in enumerate(ids):
        for _ in range(int(counts[i])):
            new = len(data["images"]) + 1
            data["images"].append(
                {**next(im for im in gt["images"] if im["id"] == im_id), "id": new}
            )
            for ann in (x for x in gt["annotations"] if x["image_id"] == im_id):
                data["annotations"].append(
                    {**ann, "id": len(data["annotations"]) + 1, "image_id": new}
                )
            dets += [{**d, "image_id": new} for d in preds if d["image_id"] == im_id]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return ev.stats


def test_coco_cis_equal_pycocotools_on_the_same_resampled_image_sets(runs):
    """Independent oracle for the COCO path: the same resamples, each evaluated by pycocotools."""
    from coordbench.metrics.bootstrap import resample_counts

    n_boot, seed = 4, 7
    weights = resample_counts(60, n_boot, np.random.default_rng(seed))
    stats_a = [_coco_stats_on_multiset(runs["a"] / "eval", w) for w in weights]
    stats_b = [_coco_stats_on_multiset(runs["crippled"] / "eval", w) for w in weights]
    res = compare_runs(
        [runs["a"], runs["crippled"]], n_boot=n_boot, seed=seed, metrics=["mAP", "AR1"]
    )
    for label, i in (("mAP", 0), ("AR1", 6)):
        deltas = [b[i] - a[i] for a, b in zip(stats_a, stats_b, strict=True)]
        lo, hi = np.percentile(deltas, [2.5, 97.5])
        row = res.delta("crippled", label)
        assert (row.ci_low, row.ci_high) == (
            pytest.approx(lo, abs=1e-9),
            pytest.approx(hi, abs=1e-9),
        ), label


def test_a_seed_only_pair_with_significant_verdicts_is_called_seed_noise(runs, tmp_path):
    samples, preds = runs["samples"], noisy_predictor(runs["samples"], 1)
    hot = {"decode": {"temperature": 0.7}}
    s1 = make_run(tmp_path, "hot_s1", samples, preds, identity={**hot, "seed": 1})
    # the same identity but another seed, and half the boxes gone: the CIs exclude 0
    s2 = make_run(tmp_path, "hot_s2", samples, drop_half(preds), identity={**hot, "seed": 2})
    res = compare_runs([s1, s2], n_boot=N_BOOT)
    hits = [d for d in res.pairs[0].deltas if d.verdict not in ("within noise", "n/a")]
    tested = [d for d in res.pairs[0].deltas if d.verdict != "n/a"]
    assert hits
    want = (
        "hot_s2 and hot_s1 differ only in the sampling seed, "
        f"yet {len(hits)} of {len(tested)} metrics "
        "have a 95 % CI that excludes 0"
    )
    assert any(c.startswith(want) for c in res.caveats), res.caveats
    # another axis too (checkpoint), or greedy runs: the verdicts may be real, no such caveat
    ck = make_run(
        tmp_path,
        "hot_ck",
        samples,
        drop_half(preds),
        identity={**hot, "seed": 2, "checkpoint": {"sha256": "d" * 64}},
    )
    cold = make_run(tmp_path, "cold_s2", samples, drop_half(preds), identity={"seed": 2})
    for pair in ([s1, ck], [runs["a"], cold]):
        assert not any("sampling seed" in c for c in compare_runs(pair, n_boot=N_BOOT).caveats)
    # a seed pair where every CI contains 0 needs no warning
    s3 = make_run(tmp_path, "hot_s3", samples, preds, identity={**hot, "seed": 3})
    assert not any("sampling seed" in c for c in compare_runs([s1, s3], n_boot=N_BOOT).caveats)


def test_shared_samples_with_different_gt_are_a_caveat(runs, tmp_path):
    """Same sample ids, another annotation: 3 samples lose a box, 2 move one by 30 % of the
    image. Per-image deltas would read as a model change; the caveat counts exactly those 5."""
    import copy

    samples = copy.deepcopy(runs["samples"])
    for s in samples[:3]:
        s["gt"] = s["gt"][1:] if len(s["gt"]) > 1 else []
    for s in samples[10:12]:
        p = s["gt"][0]["points"]
        s["gt"][0]["points"] = [p[0] + 192, p[1], p[2] + 192, p[3]]
    other = make_run(tmp_path, "regt", samples, noisy_predictor(runs["samples"], 1))
    res = compare_runs([runs["a"], other], n_boot=0)
    gt = [c for c in res.caveats if "different ground truth" in c]
    assert len(gt) == 1 and "5 of the 60 shared samples" in gt[0], res.caveats
    # the same GT (another seed of the model) gives no such caveat
    same = compare_runs([runs["a"], runs["a_s1"]], n_boot=0)
    assert not any("different ground truth" in c for c in same.caveats)
