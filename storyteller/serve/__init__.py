"""Merging a run into a standalone model directory, and serving models behind one
OpenAI-compatible endpoint (vLLM on a GPU, llama.cpp or `transformers serve` on a CPU), with the
client the app, `storyteller write` and `storyteller evaluate --endpoint` use."""
