"""Sampling presets, and how they are sent to vLLM and to OpenAI-compatible servers."""

from __future__ import annotations

import pytest

from storyteller.evaluate.generate import vllm_sampling
from storyteller.sampling import PRESETS, STUDIO_PRESETS, Sampling, preset


def test_presets_are_named_and_unknown_names_say_which_exist():
    assert set(PRESETS) == {"story", "focused", "wild", "greedy"}
    assert preset("greedy").temperature == 0
    with pytest.raises(KeyError, match="story, focused, wild, greedy, balanced, creative"):
        preset("spicy")


def test_studio_presets_resolve_to_the_writing_presets():
    assert preset("balanced") == preset("story")
    assert preset("creative") == preset("wild")
    assert [preset(name).temperature for name in STUDIO_PRESETS] == [0.5, 0.8, 1.0]


def test_endpoint_body_sends_extensions_only_when_set():
    body = Sampling.from_preset("story", max_tokens=100, seed=7).body()
    assert body == {"max_tokens": 100, "temperature": 0.8, "top_p": 0.95, "seed": 7}
    assert Sampling.from_preset("focused", max_tokens=100).body()["repetition_penalty"] == 1.05
    # Greedy sends no nucleus settings; an override beats the preset.
    assert Sampling.from_preset("greedy").body() == {"temperature": 0.0, "max_tokens": 1024}
    assert Sampling.from_preset("story", temperature=0.3, top_k=40).body()["top_k"] == 40


def test_vllm_sampling_maps_every_setting():
    params = vllm_sampling(Sampling.from_preset("focused", max_tokens=64), seed=3)
    assert params == {"temperature": 0.5, "top_p": 0.9, "top_k": -1, "repetition_penalty": 1.05,
                      "max_tokens": 64, "seed": 3}
