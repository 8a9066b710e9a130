"""`--threads`: torch's CPU thread count is chosen per model size, lands in provenance, and never
in the identity hash (it does not change the numbers)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from coordbench.cli.main import main as cli
from coordbench.config.run import RunConfig
from coordbench.errors import ConfigError
from coordbench.pipeline.plan import plan_run

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_choose_threads_small_cpu_model_gets_one():
    from coordbench.backends.hf_loading import SMALL_MODEL_PARAMS, choose_threads

    torch.set_num_threads(2)
    assert choose_threads(None, "cpu", 4_000_000) == 1
    assert choose_threads(None, "cpu", SMALL_MODEL_PARAMS) == 2  # large: torch's own
    assert choose_threads(None, "cuda", 4_000_000) == 2
    assert choose_threads(3, "cpu", 4_000_000) == 3  # an explicit value always wins


def test_threads_not_in_identity_and_validated():
    base = plan_run(RunConfig(limit=2))
    assert plan_run(RunConfig(limit=2, threads=2)).identity_hash == base.identity_hash
    with pytest.raises(ConfigError, match="--threads"):
        RunConfig(threads=0).resolved()


@pytest.mark.parametrize("threads", [None, 2])
def test_threads_land_in_provenance(tmp_path, threads):
    args = ["run", "--limit", "2", "--max-new-tokens", "8", "--no-progress"]
    args += ["--out", str(tmp_path), "--name", "r", "--device", "cpu"]
    if threads:
        args += ["--threads", str(threads)]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    run_json = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run_json["config"]["threads"] == threads
    session = run_json["provenance"]["sessions"][0]["generation"]
    assert session["backend"]["torch_threads"] == (threads or 1)  # embedded: small, so 1
