"""The plain-Python prefill model of list batches is bit-identical to numpy's array arithmetic."""

from __future__ import annotations

import random

import numpy as np
import pytest

from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import _kv_bytes, _kv_bytes_of
from disagg.cluster.hardware.prefill import _prefill_time, prefill_flops, prefill_time
from disagg.cluster.hardware.pairwise import pairwise_sum


@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, 15, 16, 17, 127, 128, 129, 300, 1000])
def test_pairwise_sum_adds_as_numpy_does(n: int) -> None:
    rng = random.Random(n)
    values = [rng.uniform(-1.0, 1.0) * 10 ** rng.uniform(-6, 18) for _ in range(n)]
    assert pairwise_sum(values) == float(np.sum(np.asarray(values, dtype=np.float64)))


@pytest.mark.parametrize("model, hw", [("llama-3.1-70b", "trainium2"), ("gpt-oss-120b", "h100"),
                                       ("llama-3.1-70b", "cs3")])
def test_list_batches_match_array_batches(model: str, hw: str) -> None:
    m, h = get_model(model), get_hardware(hw)
    rng = random.Random(7)
    for _ in range(200):
        prompts = [rng.randint(1, 131_072) for _ in range(rng.choice([1, 3, 8, 9, 40, 200]))]
        cached = [rng.randint(0, p) for p in prompts]
        for c in (None, cached):
            arrays = None if c is None else np.asarray(c)
            assert prefill_flops(prompts, m, c) == prefill_flops(np.asarray(prompts), m, arrays)
            assert _prefill_time(prompts, m, h, 4, c) == _prefill_time(np.asarray(prompts), m, h,
                                                                       4, arrays)


@pytest.mark.parametrize("model, hw", [("llama-3.1-70b", "trainium2"), ("gpt-oss-120b", "h100"),
                                       ("llama-3.1-70b", "cs3"), ("qwen3-32b", "trainium2")])
@pytest.mark.parametrize("chips", [1, 3, 4, 16])
def test_unit_terms_path_matches_array_batches(model: str, hw: str, chips: int) -> None:
    # prefill_time answers lists with the unit type's terms precomputed (_list_time): the same
    # StepTime, bit for bit, as the numpy model of the same batch
    m, h = get_model(model), get_hardware(hw)
    rng = random.Random(chips)
    for _ in range(100):
        prompts = [rng.randint(1, 131_072) for _ in range(rng.choice([1, 2, 5, 9, 40]))]
        cached = [rng.randint(0, p) for p in prompts]
        for c in (None, cached):
            arrays = None if c is None else np.asarray(c)
            assert prefill_time(prompts, m, h, chips, c) == _prefill_time(
                np.asarray(prompts), m, h, chips, arrays)


def test_list_batch_rejects_cached_beyond_prompt() -> None:
    with pytest.raises(ValueError, match="cached_tokens"):
        prefill_flops([100, 200], get_model("llama-3.1-8b"), [0, 201])
    with pytest.raises(ValueError, match="cached_tokens"):
        prefill_flops([100, 200], get_model("llama-3.1-8b"), [0])


@pytest.mark.parametrize("model", ["llama-3.1-70b", "gpt-oss-120b", "qwen3-32b"])
def test_kv_bytes_of_a_count_matches_the_array_model(model: str) -> None:
    m = get_model(model)
    counts = [0, 1, 127, 128, 129, 4096, 131_072, 1_000_003]
    assert [_kv_bytes_of(t, m) for t in counts] == list(_kv_bytes(np.asarray(counts), m))
