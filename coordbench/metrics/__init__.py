"""Scoring: upstream-format scored records -> COCO, F1-ish, calibration, diagnostics, bootstrap.

evaluate (entry point, JSONL reader) -> ingest (validation) -> coco (faster-coco-eval /
pycocotools), f1 (greedy set matching), semantic (desc -> class), calibration, diagnostics;
eval_dir writes upstream's eval files; coco_match / coco_images / resample / bootstrap re-run
COCO's accumulate over image resamples for paired confidence intervals.
"""
