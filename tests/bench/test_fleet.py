"""The benchmarks' pretend host: the GPUs its workers claim are ones that answer, as a claim requires."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_every_worker_claims_a_distinct_gpu_that_answers(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))  # as run_all.py runs the benchmarks
    fleet = importlib.import_module("fleet")
    gpus = {gpu["index"]: gpu for gpu in fleet.fake_host(64)["gpus"]}
    # 50 in flight, the most any benchmark runs, and the expiry benchmark's 50 claims.
    chosen = [fleet.responding_gpu(worker) for worker in range(50)]
    assert len(set(chosen)) == len(chosen)
    assert all(index in gpus and not gpus[index].get("lost") for index in chosen)
    assert any(gpu.get("lost") for gpu in gpus.values())  # the host still shows what a lost GPU looks like


def test_a_host_sized_for_n_claims_has_every_gpu_they_name(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    fleet = importlib.import_module("fleet")
    claims = 50  # the expiry benchmark's
    host = fleet.fake_host(fleet.responding_gpu(claims - 1) + 1)
    answering = {gpu["index"] for gpu in host["gpus"] if not gpu.get("lost")}
    assert {fleet.responding_gpu(n) for n in range(claims)} <= answering
