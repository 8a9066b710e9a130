"""Parser robustness and speed: seeded fuzzed model answers through `parse_output`.

Each answer is a CoordJSON output (0-8 records, any surface's values, some invalid on purpose:
out-of-range numbers, NaN/inf, quoted tokens, extra keys, the other field order, polys), then
0-3 mutations (truncate, duplicate, swap, inject a structural piece, delete, wrap in chatter),
plus a few 1 MB inputs. Prints parse-status counts, exceptions (goal: 0) and time per parse.

    .venv/bin/python bench/parse_fuzz.py [--n 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter

from coordbench.parse.output import parse_output
from coordbench.types import SURFACES

PIECES = [
    "{",
    "}",
    "[",
    "]",
    '"',
    "\\",
    ",",
    ":",
    " ",
    "\n",
    "<|",
    "|>",
    "<|im_end|>",
    "<|coord_7|>",
    '"objects"',
    "NaN",
    "1e308",
    "-7",
    "1000",
    "\ud800",
    "é",
    '{"objects": [',
    "]}",
]
SIZES = [(1024, 768), (640, 480), (1248, 832), (32, 32), (1, 1)]


def _value(rng: random.Random, surface: str, v: int | None = None) -> str:
    if v is None and rng.random() < 0.04:
        return rng.choice(
            ["NaN", "Infinity", "1e308", "-5", "12.5", '"7"', '"<|coord_3|>"', "null"]
        )
    if v is None:
        hi = {"coord_tokens": 999, "norm1000": 999, "rel1000": 1000, "pixel": 1300}[surface]
        v = rng.randint(0, hi + 5 if rng.random() < 0.1 else hi)
    return f"<|coord_{v}|>" if surface == "coord_tokens" else str(v)


def _record(rng: random.Random, surface: str, desc_first: bool) -> str:
    key = "bbox_2d" if rng.random() < 0.95 else "poly"
    n = 4 if key == "bbox_2d" else rng.choice([6, 8])
    if rng.random() < 0.03:
        n += rng.choice([-1, 1])
    if n == 4 and rng.random() < 0.9:  # most boxes come out ordered: x1 < x2, y1 < y2
        x1, y1 = rng.randint(0, 900), rng.randint(0, 900)
        box = [x1, y1, x1 + rng.randint(1, 99), y1 + rng.randint(1, 99)]
        values = [_value(rng, surface, v) for v in box]
    else:
        values = [_value(rng, surface) for _ in range(n)]
    g = f'"{key}": [' + ", ".join(values) + "]"
    d = '"desc": "' + rng.choice(["person", "dog", "wine glass", "", "tv", "traffic light"]) + '"'
    parts = [d, g] if desc_first == (rng.random() < 0.93) else [g, d]
    if rng.random() < 0.03:
        parts.append('"score": 0.9')
    return "{" + ", ".join(parts) + "}"


def _mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        i = rng.randrange(len(text) + 1)
        j = rng.randrange(i, len(text) + 1)
        op = rng.randrange(6)
        if op == 0:
            text = text[:i]
        elif op == 1:
            text = text[:j] + text[i:j] + text[j:]
        elif op == 2:
            k = rng.randrange(j, len(text) + 1)
            text = text[:i] + text[j:k] + text[i:j] + text[k:]
        elif op == 3:
            text = text[:i] + rng.choice(PIECES) + text[i:]
        elif op == 4:
            text = text[:i] + text[j:]
        else:
            text = (
                rng.choice(["Sure! ", "```json\n", ""]) + text + rng.choice(["", "\n```", " Done."])
            )
    return text


def fuzzed(rng: random.Random) -> tuple[str, str, int, int, bool | None]:
    surface = rng.choice(SURFACES)
    desc_first = rng.random() < 0.8
    recs = [_record(rng, surface, desc_first) for _ in range(rng.randint(0, 8))]
    text = (
        '{"objects": ['
        + ", ".join(recs)
        + "]}"
        + rng.choice(["<|im_end|>", "", "<|im_end|><|endoftext|>"])
    )
    w, h = rng.choice(SIZES)
    return _mutate(rng, text), surface, w, h, rng.choice([None, True, True, False])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cases = [fuzzed(rng) for _ in range(args.n)]
    statuses: Counter[str] = Counter()
    issues: Counter[str] = Counter()
    exceptions: Counter[str] = Counter()
    n_objects = 0
    t0 = time.perf_counter()
    for text, surface, w, h, finished in cases:
        try:
            p = parse_output(text, surface=surface, width=w, height=h, finished=finished)
        except Exception as e:  # noqa: BLE001 - counting is the point
            exceptions[type(e).__name__] += 1
            continue
        statuses[p.status.value] += 1
        issues.update(p.issues)
        n_objects += len(p.objects)
    dt = time.perf_counter() - t0
    print(f"{args.n} fuzzed outputs (seed {args.seed}), {n_objects} boxes kept")
    print("status:     " + ", ".join(f"{k} {v}" for k, v in statuses.most_common()))
    print("issues:     " + ", ".join(f"{k} {v}" for k, v in issues.most_common()))
    print(
        f"exceptions: {sum(exceptions.values())}" + (f" {dict(exceptions)}" if exceptions else "")
    )
    print(f"time:       {dt * 1e6 / args.n:.0f} us/parse ({dt:.2f} s total)")
    big = {
        "1 MB garbage": "".join(chr(32 + (i * 7919) % 5000) for i in range(1_000_000)),
        "1 MB open braces": "{" * 1_000_000,
        "1 MB truncated answer (11k boxes)": '{"objects": ['
        + ", ".join(
            [
                '{"desc": "person", "bbox_2d": '
                "[<|coord_12|>, <|coord_34|>, <|coord_256|>, <|coord_480|>]}"
            ]
            * 11_000
        ),
    }
    for name, text in big.items():
        t0 = time.perf_counter()
        p = parse_output(text, surface="coord_tokens", width=1024, height=768)
        print(
            f"{name:34s} {time.perf_counter() - t0:6.3f} s  "
            f"{p.status.value}, {len(p.objects)} boxes"
        )
    return 1 if exceptions else 0


if __name__ == "__main__":
    raise SystemExit(main())
