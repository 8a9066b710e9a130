"""`--backend openai:` requests/s at concurrency 1, 8 and 32 against the in-process
OpenAI-compatible test server (FastAPI + uvicorn on 127.0.0.1, answering with the embedded model
through the HF backend), beside the HF backend called directly on the same samples.

The server runs one generation at a time (one CPU model), so this measures what the client adds
(PNG encoding, HTTP, JSON, retries off) and that concurrency overlaps it with generation; a real
engine (vLLM, SGLang) batches concurrent requests, which `bench/gpu_check.py --served` measures.

    .venv/bin/python bench/served_speed.py [--n 32] [--concurrency 1,8,32]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--concurrency", default="1,8,32")
    args = ap.parse_args()

    from coordbench.backends.hf import HFBackend
    from coordbench.backends.served import ServedBackend
    from coordbench.config.options import GenerationParams
    from coordbench.config.presets import load_prompt_preset
    from coordbench.config.prompts import build_messages
    from coordbench.config.run import EMBEDDED_CKPT, EMBEDDED_DATA
    from coordbench.config.seeding import sample_seed
    from coordbench.data.dataset import load_samples, open_image
    from coordbench.types import GenerationRequest
    from tests.served_server import serve

    prompt = load_prompt_preset("default_desc_first")
    samples = load_samples(EMBEDDED_DATA, limit=args.n)
    reqs = [
        GenerationRequest(
            s.sample_id, build_messages(prompt, open_image(s)), None, sample_seed(0, s.sample_id)
        )
        for s in samples
    ]
    params = GenerationParams(max_new_tokens=256)
    hf = HFBackend(EMBEDDED_CKPT, device="cpu")
    t0 = time.perf_counter()
    ref = [g for r in reqs for g in hf.generate([r], params)]
    hf_s = time.perf_counter() - t0
    print(f"hf backend, one sample at a time: {len(reqs) / hf_s:6.2f} samples/s")
    with serve(hf) as srv:
        for c in (int(x) for x in args.concurrency.split(",")):
            be = ServedBackend(srv.url, concurrency=c)
            t0 = time.perf_counter()
            gens = be.generate(reqs, params)
            dt = time.perf_counter() - t0
            same = sum(a.text == b.text for a, b in zip(gens, ref, strict=True))
            print(
                f"openai: concurrency {c:>3}: {len(reqs) / dt:6.2f} requests/s "
                f"({dt / len(reqs) * 1000:6.1f} ms each), {same}/{len(reqs)} answers equal hf, "
                f"ratio to hf {hf_s / dt:.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
