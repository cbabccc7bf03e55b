"""`storyteller serve --engine vllm` for real: the merged tiny model and an adapter served
unmerged, through the gateway, with the official openai client. Needs CUDA and vllm."""

from __future__ import annotations

import openai
import pytest

from storyteller.client import story_messages
from storyteller.prompts import StoryRequest
from tests.conftest import run_cli
from tests.integration.finetune_data import train_tiny, write_data
from tests.integration.test_serve import start_server, stop_server

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def test_vllm_serves_the_merged_model_and_an_adapter(tmp_path):
    pytest.importorskip("vllm", reason="vllm is not installed on this GPU machine")
    data = write_data(tmp_path / "data", train=16, val=2, test=6)
    train_tiny(data, tmp_path / "run", "train.max_steps=3")
    merged = run_cli("merge", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "tiny"))
    assert merged.returncode == 0, merged.stderr
    process, url = start_server(tmp_path / "tiny", "--engine", "vllm", "--api-key", "k",
                                "--adapter", f"again={tmp_path / 'run'}",
                                "--set", "vllm.gpu_memory_utilization=0.3")
    try:
        api = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        assert sorted(m.id for m in api.models.list().data) == ["again", "tiny"]
        messages = story_messages(StoryRequest(controls={"genre": "fable"}, premise="A fox"))
        for name in ("tiny", "again"):
            answer = api.chat.completions.create(model=name, messages=messages, max_tokens=8,
                                                 temperature=0, extra_body={"top_k": 5})
            assert answer.model == name and answer.usage.completion_tokens >= 1
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="no", max_retries=0).models.list()
    finally:
        stop_server(process)
