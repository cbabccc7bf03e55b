"""`storyteller serve`: models behind one OpenAI-compatible endpoint (vLLM on a GPU, llama.cpp
or `transformers serve` on a CPU), the gateway in front of the engine, and the preflight that
checks a model directory before any engine starts. Clients use `storyteller.client`."""
