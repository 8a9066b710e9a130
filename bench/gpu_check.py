"""One script that settles the GPU questions: throughput and batch invariance of the HF backend
(and of vLLM when installed, in-process and behind `vllm serve` through `--backend openai:`) on a
real-size random-weight Qwen2.5-VL-3B in bf16.

    python bench/gpu_check.py --minutes 8     # on a GPU node
    python bench/gpu_check.py --tiny          # anywhere: tiny model, fp32 CPU, seconds

It prints, per batch size, samples/s and tokens/s over synthetic 768-preset images with a fixed
max_new_tokens (stop tokens off: every sample decodes exactly that many tokens); then greedy
agreement bs 1 vs bs 8 and sampled (T 0.7) agreement bs 1 vs bs 8, as % of samples whose tokens
are identical; with vLLM importable, the same throughput for vLLM and its greedy agreement with
HF. Stages run in order of importance and stop when --minutes is spent (the rest is reported as
skipped). Random weights: the numbers measure the machine and the decode loop, not a model.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from coordbench.backends.hf import HFBackend
from coordbench.config.options import GenerationParams
from coordbench.types import GenerationRequest

# 768 preset (32-px grid, <= 32*32*768 px) and the 3B's 28-px grid: multiples of 224.
REAL_SIZES = [(672, 672), (896, 672), (672, 896), (448, 896)]
TINY_SIZES = [(64, 64), (96, 64), (64, 96)]


def build_checkpoint(out: Path, tiny: bool, device: str, layers: int | None = None) -> Path:
    """Real: Qwen2.5-VL-3B at its published size, random bf16 weights (built on `device`)."""
    from coordbench.embedded.tiny_families import save_tiny

    if tiny:
        return save_tiny("qwen2_5_vl", out, seed=0)
    import transformers

    from coordbench.embedded.build import save_checkpoint
    from coordbench.embedded.real_configs import real_overrides
    from coordbench.embedded.tiny_families import tiny_config, tiny_image_processor
    from coordbench.embedded.tokenizer import build_tokenizer

    family, text, vision = real_overrides("Qwen2.5-VL-3B", layers=layers)
    tok = build_tokenizer(4096)
    cfg = tiny_config(family, tok, 64 * -(-len(tok) // 64), text, vision)
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.Qwen2_5_VLForConditionalGeneration._from_config(
            cfg, dtype=torch.bfloat16
        )
    improc = tiny_image_processor(vision["patch_size"], vision["spatial_merge_size"])
    save_checkpoint(model, tok, improc, out)
    del model
    return out


def requests(n: int, sizes, seed: int = 7) -> list[GenerationRequest]:
    out = []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        pix = (np.random.RandomState(i).rand(h, w, 3) * 255).astype("uint8")
        content = [
            {"type": "image", "image": Image.fromarray(pix)},
            {"type": "text", "text": "Detect every object in the image."},
        ]
        out.append(
            GenerationRequest(f"s{i}", [{"role": "user", "content": content}], None, seed + i)
        )
    return out


def run_batches(be, reqs, params, bs) -> tuple[float, list[list[int]]]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    toks = []
    for k in range(0, len(reqs), bs):
        toks += [g.token_ids for g in be.generate(reqs[k : k + bs], params)]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, toks


def agreement(a: list[list[int]], b: list[list[int]]) -> float:
    return 100.0 * sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


class Budget:
    def __init__(self, minutes: float):
        self.end = time.monotonic() + 60 * minutes
        self.skipped: list[str] = []

    def ok(self, stage: str) -> bool:
        if time.monotonic() < self.end:
            return True
        self.skipped.append(stage)
        return False


def hf_stages(be, reqs, args, budget: Budget, result: dict) -> None:
    greedy = GenerationParams(temperature=0.0, max_new_tokens=args.max_new_tokens)
    sampled = GenerationParams(temperature=0.7, max_new_tokens=args.max_new_tokens)
    n_tok = len(reqs) * args.max_new_tokens
    tokens: dict[int, list[list[int]]] = {}
    order = [1, 8] + [b for b in args.batch_sizes if b not in (1, 8)]  # agreement pair first
    print(f"{'backend':>8} {'bs':>4} {'samples/s':>10} {'tokens/s':>10}")
    for bs in order:
        if not budget.ok(f"hf greedy bs {bs}"):
            continue
        dt, tokens[bs] = run_batches(be, reqs, greedy, bs)
        result["hf"][bs] = {"samples_per_s": len(reqs) / dt, "tokens_per_s": n_tok / dt}
        print(f"{'hf':>8} {bs:>4} {len(reqs) / dt:>10.2f} {n_tok / dt:>10.1f}")
        if bs == 8 and 1 in tokens:
            result["greedy_agreement_bs1_bs8"] = agreement(tokens[1], tokens[8])
            if budget.ok("hf sampled T0.7 bs 1 vs 8"):
                _, s1 = run_batches(be, reqs, sampled, 1)
                _, s8 = run_batches(be, reqs, sampled, 8)
                result["sampled_agreement_bs1_bs8"] = agreement(s1, s8)
    result["hf_greedy_tokens_bs1"] = tokens.get(1)


def vllm_stage(ckpt: Path, reqs, args, budget: Budget, result: dict) -> None:
    if importlib.util.find_spec("vllm") is None:
        print("vLLM: not installed, skipped")
        return
    if not budget.ok("vllm"):
        return
    from coordbench.backends.vllm import VLLMBackend

    be = VLLMBackend(ckpt)
    be.stop_ids = []
    greedy = GenerationParams(temperature=0.0, max_new_tokens=args.max_new_tokens)
    n_tok = len(reqs) * args.max_new_tokens
    toks = None
    for bs in args.batch_sizes:
        if not budget.ok(f"vllm bs {bs}"):
            continue
        dt, t = run_batches(be, reqs, greedy, bs)
        toks = toks or t
        result["vllm"][bs] = {"samples_per_s": len(reqs) / dt, "tokens_per_s": n_tok / dt}
        print(f"{'vllm':>8} {bs:>4} {len(reqs) / dt:>10.2f} {n_tok / dt:>10.1f}")
    if toks and result.get("hf_greedy_tokens_bs1"):
        result["vllm_vs_hf_greedy_agreement"] = agreement(toks, result["hf_greedy_tokens_bs1"])
    be.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def served_stage(ckpt: Path, reqs, args, budget: Budget, result: dict) -> None:
    """`vllm serve` on this node (loopback only), then `--backend openai:` against it at
    concurrency 1 / 8 / 32: samples/s, and greedy agreement of the served texts with the
    in-process vLLM backend's (same engine) and the HF backend's tokens decoded."""
    import subprocess
    import urllib.request

    if importlib.util.find_spec("vllm") is None:
        print("vllm serve: vLLM not installed, skipped")
        return
    if not budget.ok("vllm serve"):
        return
    from coordbench.backends.served import ServedBackend

    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(ckpt),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        "bench",
        "--max-model-len",
        "8192",
        "--disable-log-requests",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None:
                    print("vllm serve: the server exited at start, skipped")
                    return
                time.sleep(2)
        else:
            print("vllm serve: not up after 600 s, skipped")
            return
        greedy = GenerationParams(temperature=0.0, max_new_tokens=args.max_new_tokens)
        texts = None
        for c in (1, 8, 32):
            if not budget.ok(f"vllm serve concurrency {c}"):
                continue
            be = ServedBackend(url, served_model="bench", concurrency=c)
            t0 = time.perf_counter()
            gens = be.generate(reqs, greedy)
            dt = time.perf_counter() - t0
            texts = texts or [g.text for g in gens]
            same = 100.0 * sum(g.text == t for g, t in zip(gens, texts, strict=True)) / len(gens)
            result["served"][c] = {"samples_per_s": len(reqs) / dt, "agree_with_c1_pct": same}
            print(f"{'served':>8} c={c:<3} {len(reqs) / dt:>10.2f} samples/s, {same:.1f}% = c1")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=8.0, help="time budget for all stages")
    ap.add_argument("--tiny", action="store_true", help="tiny fp32 model: a CPU dry run")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n-images", type=int, help="default 64 (tiny: 16)")
    ap.add_argument("--max-new-tokens", type=int, help="default 64 (tiny: 8)")
    ap.add_argument("--batch-sizes", default="1,4,8,16")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.n_images = args.n_images or (16 if args.tiny else 64)
    args.max_new_tokens = args.max_new_tokens or (8 if args.tiny else 64)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    budget = Budget(args.minutes)
    result: dict = {"device": device, "tiny": args.tiny, "hf": {}, "vllm": {}, "served": {}}
    if device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name(device)
    reqs = requests(args.n_images, TINY_SIZES if args.tiny else REAL_SIZES)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ckpt = build_checkpoint(Path(tmp) / "ck", args.tiny, device)
        be = HFBackend(ckpt, device=device)
        be.stop_ids = set()  # fixed length: every sample decodes max_new_tokens
        n_params = sum(p.numel() for p in be.model.parameters()) / 1e9
        print(
            f"model: {'tiny' if args.tiny else 'Qwen2.5-VL-3B'} random weights, "
            f"{n_params:.2f} B params, {be.dtype_name} on {device} "
            f"({time.perf_counter() - t0:.0f}s to build and load); {len(reqs)} images, "
            f"max_new_tokens={args.max_new_tokens}"
        )
        hf_stages(be, reqs, args, budget, result)
        be.close()
        vllm_stage(ckpt, reqs, args, budget, result)
        served_stage(ckpt, reqs, args, budget, result)
    result.pop("hf_greedy_tokens_bs1", None)
    for key in ("greedy_agreement_bs1_bs8", "sampled_agreement_bs1_bs8"):
        if key in result:
            print(f"{key}={result[key]:.1f}%")
    if "vllm_vs_hf_greedy_agreement" in result:
        print(f"vllm_vs_hf_greedy_agreement={result['vllm_vs_hf_greedy_agreement']:.1f}%")
    if budget.skipped:
        print("skipped (over --minutes): " + ", ".join(budget.skipped))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
