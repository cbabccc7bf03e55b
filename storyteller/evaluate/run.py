"""`storyteller evaluate`: a model (and its baseline) → stories for the test prompts, every
automatic metric with its interval, and a report. The only module of the stage that touches disk.

Generations are appended to OUT/generations.jsonl as each batch finishes, so a killed evaluation
resumes where it stopped: a story is reused when its model, prompt, sample, seed and sampling
settings all match."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyteller import console
from storyteller.config import to_dict
from storyteller.curated import read_data, split_label
from storyteller.errors import InputError
from storyteller.evaluate import metrics as m
from storyteller.evaluate.adherence import (adherence, load_embedder, relevance, story_of,
                                           style_text, train_tagger)
from storyteller.evaluate.aggregate import summarise
from storyteller.evaluate.config import EvaluateConfig
from storyteller.evaluate.context_metrics import context_metrics, memory_of
from storyteller.evaluate.generate import Request, open_engine
from storyteller.evaluate.markers import MarkerScore
from storyteller.finetune.heldout import StoryNll
from storyteller.files import sha256_of, write_atomic
from storyteller.models import ModelSource, inspect_model, load_for_inference
from storyteller.sampling import Sampling

GENERATIONS = "generations.jsonl"
PERPLEXITY = "perplexity.json"


@dataclass
class EvaluateResult:
    out: Path
    summary: dict[str, Any]


@dataclass(frozen=True)
class Contender:
    """A model in the comparison: its label in the report ("tuned" or "base") and reference."""

    label: str
    ref: str
    source: ModelSource | None  # None for a model known only by name to an endpoint


def out_dir_for(cfg: EvaluateConfig) -> Path:
    return Path(cfg.out.replace("{name}", cfg.name))


def request_seed(seed: int, prompt_id: str, sample: int) -> int:
    """A story's seed: the same for every model, so base and tuned answer a prompt in pairs."""
    digest = hashlib.sha256(f"{seed}:{prompt_id}:{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def select_prompts(pairs: Sequence[dict[str, Any]], limit: int,
                   kinds: Sequence[str]) -> list[dict[str, Any]]:
    """The test pairs to evaluate: of the given kinds, and with a limit taken in turn from each
    genre (sorted), so a small evaluation still covers every genre and house style."""
    chosen = [p for p in pairs if not kinds or p.get("kind") in kinds]
    if not limit or limit >= len(chosen):
        return chosen
    by_genre: dict[str, list[dict[str, Any]]] = {}
    for pair in chosen:
        by_genre.setdefault(str(pair.get("controls", {}).get("genre") or ""), []).append(pair)
    queues = [sorted(group, key=lambda p: p["id"]) for _, group in sorted(by_genre.items())]
    picked: list[dict[str, Any]] = []
    while len(picked) < limit:
        for queue in queues:
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    order = {p["id"]: i for i, p in enumerate(chosen)}
    return sorted(picked, key=lambda p: order[p["id"]])


def contenders(cfg: EvaluateConfig) -> list[Contender]:
    if not cfg.model:
        raise InputError.at("--model", "no model to evaluate",
                            "pass --model runs/<name> (a run), a model directory or a model name")
    endpoint = cfg.generation.engine == "endpoint" or bool(cfg.generation.endpoint)
    tuned_source = None if endpoint else inspect_model(cfg.model)
    result = [Contender("tuned", cfg.model, tuned_source)]
    baseline = cfg.baseline
    if baseline == "auto":
        baseline = ""
        if tuned_source is not None and tuned_source.adapter is not None:
            baseline = str(tuned_source.metadata.get("base_model") or tuned_source.weights)
    if baseline:
        result.append(Contender("base", baseline, None if endpoint else inspect_model(baseline)))
    return result


def weights_digest(source: ModelSource | None) -> str | None:
    """The SHA-256 of a local model's weights (the adapter's for an adapter): a model trained
    again under the same path is a different model, and its old stories must not be reused."""
    if source is None:
        return None
    folder = source.adapter or source.weights
    if not isinstance(folder, Path) or not folder.is_dir():
        return None
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    digest = hashlib.sha256()
    for file in files:
        digest.update(sha256_of(file).encode())
    return digest.hexdigest()


def sampling_of(cfg: EvaluateConfig) -> Sampling:
    """The configured preset with its token limit (each request then adds its own seed)."""
    return Sampling.from_preset(cfg.generation.preset, max_tokens=cfg.generation.max_tokens)


def settings(cfg: EvaluateConfig, contender: Contender) -> dict[str, Any]:
    """What a saved story depends on; a story is reused on resume only when these match."""
    return {"model": contender.ref, "weights": weights_digest(contender.source),
            "preset": sampling_of(cfg).preset_json(),
            "max_tokens": cfg.generation.max_tokens, "seed": cfg.seed}


def read_generations(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill: that story is generated again
    return records


def append(path: Path, records: Sequence[dict[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def generate(cfg: EvaluateConfig, contender: Contender, prompts: Sequence[dict[str, Any]],
             out: Path, steps) -> tuple[list[dict[str, Any]], Any]:
    """Every story of `contender`, generating only those not already saved; and the engine if
    one was opened (reused for perplexity)."""
    wanted = settings(cfg, contender)
    path = out / GENERATIONS
    saved = {(r["model"], r["prompt_id"], r["sample"]): r for r in read_generations(path)
             if r.get("settings") == wanted and r["model"] == contender.label}
    records, todo = [], []
    for pair in prompts:
        for sample in range(cfg.generation.samples):
            key = (contender.label, pair["id"], sample)
            if key in saved:
                records.append(saved[key])
            else:
                todo.append((pair, sample))
    if not todo:
        return records, None
    gen = cfg.generation
    engine = open_engine(gen.engine, contender.ref, contender.source, endpoint=gen.endpoint,
                         batch_size=gen.batch_size, seed=cfg.seed, timeout=gen.timeout,
                         gpu_memory_utilization=gen.gpu_memory_utilization)
    # Similar lengths batch together; with one seed per story, order does not change a story.
    todo.sort(key=lambda item: len(json.dumps(item[0]["messages"][:-1])))
    chunk = gen.batch_size if engine.name == "transformers" else max(64, gen.batch_size)
    chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
    # Counted story by story, not chunk by chunk: a chunk of 64 stories through an endpoint
    # takes minutes, and a log should still hear every 30 s how far the evaluation is.
    with steps.counting(f"stories ({contender.label})", len(todo)) as advance:
        for part in chunks:
            requests = [Request(f"{pair['id']}#{sample}", pair["messages"][:-1],
                                request_seed(cfg.seed, pair["id"], sample))
                        for pair, sample in part]
            generations = engine.generate(requests, sampling_of(cfg), on_done=advance)
            new = [generation_record(contender, pair, sample, request, generations[request.key],
                                     wanted, engine.name)
                   for (pair, sample), request in zip(part, requests)]
            append(path, new)
            records.extend(new)
    return records, engine


def generation_record(contender: Contender, pair: dict[str, Any], sample: int, request: Request,
                      generation, wanted: dict[str, Any], engine: str) -> dict[str, Any]:
    user = next(msg["content"] for msg in reversed(pair["messages"][:-1]) if msg["role"] == "user")
    return {"id": f"{contender.label}-{pair['id']}-s{sample}", "model": contender.label,
            "model_ref": contender.ref, "prompt_id": pair["id"], "sample": sample,
            "kind": pair.get("kind"), "controls": pair.get("controls", {}), "prompt": user,
            "opening": (pair.get("request") or {}).get("opening") if pair.get("kind") == "opening"
            else None,
            "messages": request.messages, "text": generation.text, "reference": story_of(pair),
            "finish_reason": generation.finish_reason, "new_tokens": generation.new_tokens,
            "seed": request.seed, "preset": wanted["preset"]["name"], "engine": engine,
            "settings": wanted}


def perplexities(cfg: EvaluateConfig, contender: Contender, pairs: Sequence[dict[str, Any]],
                 engine, out: Path, steps) -> tuple[list[StoryNll], list[MarkerScore]]:
    """Per-story losses on the test stories and house-style marker scores, cached in
    OUT/perplexity.json per model."""
    from storyteller.evaluate.markers import marker_scores
    from storyteller.finetune.heldout import story_nll

    if contender.source is None or not cfg.metrics.perplexity:
        return [], []
    path = out / PERPLEXITY
    cache = json.loads(path.read_text()) if path.exists() else {}
    ids = sorted(p["id"] for p in pairs)
    weights = weights_digest(contender.source)
    entry = cache.get(contender.label)
    if entry and entry.get("model") == contender.ref and entry.get("weights") == weights \
            and entry.get("ids") == ids and "markers" in entry:
        return ([StoryNll(**item) for item in entry["stories"]],
                [MarkerScore(**item) for item in entry["markers"]])
    if engine is not None and getattr(engine, "name", "") == "transformers":
        model, tokenizer = engine.model, engine.tokenizer
    else:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        model, tokenizer = load_for_inference(contender.source, device=device)
    items, _ = story_nll(model, tokenizer, pairs,
                         progress=lambda xs, what: steps.track(xs, f"{what} ({contender.label})"))
    markers = marker_scores(model, tokenizer, pairs)
    cache[contender.label] = {"model": contender.ref, "weights": weights, "ids": ids,
                              "stories": [item.__dict__ for item in items],
                              "markers": [item.__dict__ for item in markers]}
    write_atomic(path, (json.dumps(cache, indent=1) + "\n").encode())
    return items, markers


def score(records: list[dict[str, Any]], train: Sequence[dict[str, Any]], cfg: EvaluateConfig,
          steps) -> None:
    """Add every per-story metric to `records` (in place)."""
    train_stories = sorted({story_of(p) for p in train})
    index = m.ngram_index(train_stories, cfg.metrics.memorisation_n)
    tagger = train_tagger(train)
    embedder = load_embedder() if cfg.metrics.relevance else None
    by_model: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_model.setdefault(record["model"], []).append(record)
    for label, group in by_model.items():
        texts = [r["text"] for r in group]
        verdicts = adherence(tagger, texts, [r["controls"] for r in group],
                             [style_text(r) for r in group])
        similarity = relevance(embedder, [r["prompt"] for r in group], texts) if embedder \
            else [None] * len(group)
        for i, record in enumerate(steps.track(group, f"metrics ({label})")):
            others = texts[:i] + texts[i + 1:]
            record["metrics"] = {
                **m.text_metrics(record["text"], record["reference"], index,
                                 cfg.metrics.memorisation_n),
                "self_bleu": m.bleu(record["text"], others) if others else None,
                "relevance": similarity[i], **verdicts[i], **context_metrics(record)}


def run(cfg: EvaluateConfig) -> EvaluateResult:
    from storyteller.evaluate.report import print_summary, write_report

    out = out_dir_for(cfg)
    splits, data_hash = read_data(Path(cfg.data))
    pairs = splits[cfg.split]
    if not pairs:
        raise InputError.at(split_label(Path(cfg.data), cfg.split), "no pairs to evaluate",
                            "curate more stories or use --set split=val")
    prompts = select_prompts(pairs, cfg.limit, cfg.kinds)
    if not prompts:
        raise InputError.at("kinds", f"no {cfg.split} pair has a kind in {cfg.kinds}",
                            "use kinds such as premise, title, opening")
    who = contenders(cfg)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "config.yaml", _yaml(to_dict(cfg)))
    records: list[dict[str, Any]] = []
    nll: dict[str, list[StoryNll]] = {}
    markers: dict[str, list[MarkerScore]] = {}
    timing: dict[str, Any] = {}
    with console.steps() as steps:
        for contender in who:
            started = time.perf_counter()
            generated, engine = generate(cfg, contender, prompts, out, steps)
            generated_at = time.perf_counter()
            records.extend(generated)
            nll[contender.label], markers[contender.label] = perplexities(
                cfg, contender, prompts, engine, out, steps)
            if engine is not None:
                engine.close()
            # Seconds of this invocation: stories reused from an earlier, killed one cost none.
            timing[contender.label] = {
                "generate_s": round(generated_at - started, 2),
                "perplexity_s": round(time.perf_counter() - generated_at, 2),
                "new_tokens": sum(r["new_tokens"] for r in generated)}
        # A document's context parts, for its metrics (also on stories saved by an earlier run).
        pair_of = {pair["id"]: pair for pair in prompts}
        for record in records:
            record["memory"] = memory_of(pair_of[record["prompt_id"]])
        started = time.perf_counter()
        score(records, splits["train"], cfg, steps)
        timing["metrics_s"] = round(time.perf_counter() - started, 2)
    records.sort(key=lambda r: (r["model"] != "tuned", r["prompt_id"], r["sample"]))
    write_atomic(out / GENERATIONS,
                 "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode())
    summary = summarise(records, nll, "tuned", "base" if len(who) > 1 else None, cfg.seed,
                        cfg.metrics.bootstrap_resamples, markers)
    summary.update({
        "models": {c.label: {"ref": c.ref, "label": c.source.label if c.source else c.ref}
                   for c in who},
        "settings": {"preset": sampling_of(cfg).preset_json(),
                     "max_tokens": cfg.generation.max_tokens,
                     "samples": cfg.generation.samples, "seed": cfg.seed,
                     "engine": sorted({r["engine"] for r in records}),
                     "prompts": len(prompts), "split": cfg.split},
        "timing": timing,
        "data": {"dir": cfg.data, "manifest_sha256": data_hash,
                 "generations_sha256": sha256_of(out / GENERATIONS)},
    })
    write_atomic(out / "metrics.json", (json.dumps(summary, indent=2) + "\n").encode())
    write_report(out, summary, records, cfg.samples_per_genre)
    print_summary(summary)
    return EvaluateResult(out, summary)


def _yaml(data: dict[str, Any]) -> bytes:
    import yaml

    return yaml.safe_dump(data, sort_keys=False).encode()
