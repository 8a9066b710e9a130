"""`--backend openai:URL` against a real OpenAI-compatible HTTP server on 127.0.0.1 (FastAPI +
uvicorn in-process, answering with the embedded model through the HF backend): greedy answers
equal `--backend hf`, faults are retried with nothing lost, a dead server fails before any
work, and the API key never reaches a file or a log."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.test_reliability_support import run_cli

pytestmark = pytest.mark.slow
SECRET = "sk-test-0123456789SECRET"
FAST = {"COORDBENCH_SERVED_BACKOFF": "0.05"}


@pytest.fixture(scope="module")
def server():
    from coordbench.backends.hf import HFBackend
    from coordbench.config.run import EMBEDDED_CKPT
    from tests.served_server import serve

    backend = HFBackend(EMBEDDED_CKPT, device="cpu", threads=1)
    with serve(backend) as srv:
        yield srv
    backend.close()


def _args(out: Path, name: str, backend: str, *extra: str) -> list[str]:
    return [
        "run",
        "--backend",
        backend,
        "--limit",
        "12",
        "--batch-size",
        "4",
        "--out",
        str(out),
        "--name",
        name,
        "--no-progress",
        *extra,
    ]


def _records(rd: Path) -> list[dict]:
    return [json.loads(x) for x in (rd / "gt_vs_pred.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hf")
    p = run_cli(_args(out, "hf", "hf", "--batch-size", "1"))
    assert p.returncode == 0, p.stderr
    return out / "hf"


def test_served_greedy_equals_hf_byte_for_byte(server, hf_run, tmp_path):
    p = run_cli(
        _args(tmp_path, "s", f"openai:{server.url}", "--concurrency", "4"), OPENAI_API_KEY=SECRET
    )
    assert p.returncode == 0, p.stderr
    rd = tmp_path / "s"
    assert (rd / "gt_vs_pred.jsonl").read_bytes() == (hf_run / "gt_vs_pred.jsonl").read_bytes()
    m_s = json.loads((rd / "eval" / "metrics.json").read_text())["metrics"]
    m_h = json.loads((hf_run / "eval" / "metrics.json").read_text())["metrics"]
    assert m_s["bbox_AP"] == pytest.approx(m_h["bbox_AP"], abs=1e-9)
    head = json.loads((rd / "run.json").read_text())
    assert head["identity"]["checkpoint"]["served_model"] == "shapes-qwen25vl"
    assert head["identity"]["checkpoint"]["engine_version"] == "fake-0.1"
    assert head["identity"]["backend"] == "openai"
    # the key went to the server in the Authorization header and nowhere else
    assert server.auth and all(a == f"Bearer {SECRET}" for a in server.auth)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
    assert SECRET not in p.stdout + p.stderr


def test_credentials_in_the_url_never_reach_run_json(server, tmp_path):
    url = server.url.replace("http://", "http://user:pa55word@") + "?token=abc"
    p = run_cli(_args(tmp_path, "c", f"openai:{url}", "--limit", "2"))
    assert p.returncode == 0, p.stderr
    for f in tmp_path.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert b"pa55word" not in data and b"token=abc" not in data, f


@pytest.mark.parametrize("faults", [["429", "500"], ["drop"], ["malformed"], ["timeout"]])
def test_faults_are_retried_and_nothing_is_lost(server, hf_run, tmp_path, faults):
    server.faults = list(faults)
    env = dict(FAST)
    if faults == ["timeout"]:  # the server stalls 20 s; a generation takes well under 8 s
        env["COORDBENCH_SERVED_TIMEOUT"] = "8"
    p = run_cli(_args(tmp_path, "f", f"openai:{server.url}", "--concurrency", "1"), **env)
    assert p.returncode == 0, p.stderr
    assert not server.faults  # every fault was served
    assert _records(tmp_path / "f") == _records(hf_run)
    prov = json.loads((tmp_path / "f" / "run.json").read_text())["provenance"]
    gen = prov["sessions"][-1]["generation"]["backend"]
    assert gen["retries"] >= len(faults)


def test_a_server_that_dies_mid_run_resumes_where_it_stopped(server, hf_run, tmp_path):
    server.faults = [None] * 5 + ["500"] * 3  # request 6 fails on every attempt
    args = _args(tmp_path, "d", f"openai:{server.url}", "--concurrency", "1")
    p = run_cli(args, COORDBENCH_SERVED_ATTEMPTS="3", **FAST)
    assert p.returncode == 2 and "re-run the same command to resume" in p.stderr, p.stderr
    assert len(_records(tmp_path / "d")) == 4  # the first batch is safe on disk
    server.faults = []
    p = run_cli(args, **FAST)
    assert p.returncode == 0 and "resuming at 4/12" in p.stderr, p.stderr
    assert _records(tmp_path / "d") == _records(hf_run)


def test_a_server_that_is_down_fails_before_any_work(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = run_cli(_args(tmp_path, "x", f"openai:http://127.0.0.1:{port}/v1"))
    assert p.returncode == 2 and "no OpenAI-compatible server answers" in p.stderr
    assert not (tmp_path / "x").exists()
