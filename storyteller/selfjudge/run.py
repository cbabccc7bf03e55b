"""`storyteller pairs`: the model writes k stories for each chosen train and val prompt of a
curated SFT directory, the story judge scores each, and a prompt whose best story beats its worst
by the margin gives a preference pair. The only module of the stage that touches disk, models or
the network.

Every story is appended to OUT/samples.jsonl (with its judgement) as its batch ends; `--resume`
reuses the stories whose settings match, so a killed run loses at most one batch."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyteller import console
from storyteller.config import to_dict
from storyteller.curated import iter_located_pairs, manifest_hash, split_files, split_label
from storyteller.errors import InputError
# Stories are saved as evaluate saves its own: appended and synced per batch, a line cut short
# by a kill skipped when read back.
from storyteller.evaluate.run import append, read_generations as read_samples
from storyteller.files import sha256_of, write_atomic
from storyteller.judge import judge_story
from storyteller.selfjudge import pairs as p
from storyteller.selfjudge.config import PairsConfig
from storyteller.selfjudge.report import markdown

SAMPLES = "samples.jsonl"
SPLITS = ("train", "val")  # test prompts are never sampled: the SFT test set stays unseen


@dataclass
class PairsResult:
    out: Path
    counts: dict[str, Any]


def located(data: Path, split: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(source {file, line} of the SFT pair, the pair) for every pair of `split`."""
    files = split_files(data, split)
    return [({"file": str(files[pos.file]), "line": pos.line}, pair)
            for pos, pair in iter_located_pairs(data, split)]


def choose_prompts(cfg: PairsConfig, data: Path) -> dict[str, list[tuple[dict, dict]]]:
    """The (source, pair)s to sample per split. A val prompt that is also a train prompt is
    left out, so no prompt group spans two splits of the output."""
    manifest = data / "manifest.json"
    if manifest.is_file():
        kind = json.loads(manifest.read_text(encoding="utf-8")).get("kind")
        if kind == "preference":
            raise InputError.at(str(manifest), "is a preference directory, not curated SFT data",
                                "pass the curated directory whose prompts the model should "
                                "answer (storyteller curate's --out)")
    manifest_hash(data)  # a clear error where the directory is not curated data
    sources: dict[str, dict[str, dict]] = {}
    candidates: dict[str, list[dict]] = {}
    for split in SPLITS:
        rows = located(data, split)
        sources[split] = {pair["id"]: source for source, pair in rows}
        candidates[split] = p.distinct_prompts([pair for _, pair in rows], cfg.kinds)
    if not candidates["train"]:
        raise InputError.at(split_label(data, "train"),
                            f"no house-style prompt and no other prompt of kinds "
                            f"{', '.join(cfg.kinds)} to sample",
                            "curate prompts of those kinds, or set kinds (--set "
                            "kinds=[premise])")
    train_groups = {p.prompt_group(pair["messages"][:-1]) for pair in candidates["train"]}
    candidates["val"] = [pair for pair in candidates["val"]
                         if p.prompt_group(pair["messages"][:-1]) not in train_groups]
    chosen = {"train": p.select_prompts(candidates["train"], cfg.prompts, cfg.plain_share)}
    val_limit = p.scaled_limit(cfg.prompts, len(candidates["val"]), len(candidates["train"]))
    chosen["val"] = p.select_prompts(candidates["val"], val_limit, cfg.plain_share)
    return {split: [(sources[split][pair["id"]], pair) for pair in pairs]
            for split, pairs in chosen.items()}


def check_out(cfg: PairsConfig, out: Path, data: Path) -> None:
    if out.resolve() == data.resolve():
        raise InputError.at("--out", "is the SFT data directory",
                            "write the preference pairs to a directory of their own")
    if out.exists() and not out.is_dir():
        raise InputError.at("--out", f"{out} is a file", "choose a directory")
    if out.is_dir() and any(out.iterdir()) and not cfg.resume:
        raise InputError.at(str(out), "is not empty",
                            "pass --resume to continue the pairs run there, or choose an empty "
                            "--out")


def settings(cfg: PairsConfig, source) -> dict[str, Any]:
    """What a saved story depends on; it is reused on resume only when these all match."""
    from storyteller.evaluate.run import weights_digest
    from storyteller.sampling import Sampling

    sampling = Sampling.from_preset(cfg.generation.preset, max_tokens=cfg.generation.max_tokens)
    return {"model": cfg.model, "weights": weights_digest(source),
            "preset": sampling.preset_json(), "max_tokens": cfg.generation.max_tokens,
            "seed": cfg.seed}


def judged_text(record: dict[str, Any]) -> str:
    opening = record.get("opening")
    return f"{opening.rstrip()}\n\n{record['text']}" if opening else record["text"]


def sample_record(split: str, source: dict, pair: dict, sample: int, seed: int, generation,
                  wanted: dict[str, Any], engine: str) -> dict[str, Any]:
    return {"key": f"{split}/{pair['id']}#{sample}", "split": split, "prompt_id": pair["id"],
            "group": p.prompt_group(pair["messages"][:-1]), "sample": sample, "seed": seed,
            "kind": pair.get("kind"), "controls": pair.get("controls") or {}, "source": source,
            "messages": pair["messages"][:-1], "opening": p.opening_of(pair),
            "text": generation.text, "finish_reason": generation.finish_reason,
            "new_tokens": generation.new_tokens, "engine": engine, "settings": wanted}


def generate(cfg: PairsConfig, prompts: dict[str, list[tuple[dict, dict]]], source, out: Path,
             steps) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every story, writing only those not saved with the same settings; and timing."""
    from storyteller.evaluate.generate import Request, open_engine
    from storyteller.sampling import Sampling

    wanted = settings(cfg, source)
    path = out / SAMPLES
    saved = {r["key"]: r for r in read_samples(path) if r.get("settings") == wanted}
    records, todo = [], []
    for split, rows in prompts.items():
        for src, pair in rows:
            for sample in range(cfg.generation.samples):
                key = f"{split}/{pair['id']}#{sample}"
                if key in saved:
                    records.append(saved[key])
                else:
                    todo.append((split, src, pair, sample))
    timing = {"reused": len(records), "generated": len(todo), "generate_s": 0.0, "new_tokens": 0}
    if not todo:
        return records, timing
    gen = cfg.generation
    started = time.perf_counter()
    engine = open_engine(gen.engine, cfg.model, source, endpoint=gen.endpoint,
                         batch_size=gen.batch_size, seed=cfg.seed, timeout=gen.timeout,
                         gpu_memory_utilization=gen.gpu_memory_utilization)
    sampling = Sampling.from_preset(gen.preset, max_tokens=gen.max_tokens)
    # Similar prompt lengths batch together; each story has its own seed, so order is free.
    todo.sort(key=lambda item: len(json.dumps(item[2]["messages"][:-1])))
    size = gen.batch_size if engine.name == "transformers" else max(64, gen.batch_size)
    chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
    try:
        for part in steps.track(chunks, f"stories ({len(todo)}, {size} a batch)"):
            requests = [Request(f"{split}/{pair['id']}#{sample}", pair["messages"][:-1],
                                p.sample_seed(cfg.seed, pair["id"], sample))
                        for split, _, pair, sample in part]
            generations = engine.generate(requests, sampling)
            new = [sample_record(split, src, pair, sample, request.seed,
                                 generations[request.key], wanted, engine.name)
                   for (split, src, pair, sample), request in zip(part, requests)]
            for record in new:
                record["judgement"] = judge_story(judged_text(record), record["controls"],
                                                  record["finish_reason"]).to_json()
            append(path, new)
            records.extend(new)
            timing["new_tokens"] += sum(r["new_tokens"] for r in new)
    finally:
        engine.close()
    timing["generate_s"] = round(time.perf_counter() - started, 2)
    return records, timing


REFERENCE = -1  # the sample number of the curated story itself among the candidates


def reference_story(pair: dict[str, Any]) -> p.Judged | None:
    """The prompt's own story from the curated data as a candidate, judged as the samples are
    (it ended by itself: the writer finished it)."""
    text = pair["messages"][-1].get("content", "") if pair.get("messages") else ""
    if not text.strip():
        return None
    record = {"opening": p.opening_of(pair), "text": text}
    verdict = judge_story(judged_text(record), pair.get("controls") or {}, "stop")
    return p.Judged(REFERENCE, text, verdict.score, bool(verdict.hollow))


def build(cfg: PairsConfig, prompts: dict[str, list[tuple[dict, dict]]],
          records: list[dict[str, Any]]):
    """(preference records per split, rejects, per-prompt outcomes) from judged stories."""
    by_prompt: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        by_prompt.setdefault((record["split"], record["prompt_id"]), []).append(record)
    splits: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    rejects, outcomes = [], []
    for split, rows in prompts.items():
        for src, pair in rows:
            stories = sorted(by_prompt.get((split, pair["id"]), []), key=lambda r: r["sample"])
            judged = [p.Judged(r["sample"], r["text"], r["judgement"]["score"],
                               bool(r["judgement"]["hollow"])) for r in stories]
            reference = reference_story(pair) if cfg.with_reference else None
            if reference is not None:
                judged.insert(0, reference)
            choice = p.choose_pairs(judged, cfg.min_margin, cfg.pairs_per_prompt)
            for index, (chosen, rejected) in enumerate(choice.pairs):
                record = p.preference_record(pair, chosen, rejected, index, src)
                record["chosen_from"] = "reference" if chosen.sample == REFERENCE else "model"
                splits[split].append(record)
            outcomes.append({"prompt_id": pair["id"], "split": split,
                             "style": p.house_style(pair), "pairs": len(choice.pairs),
                             "reason": choice.reason, "scores": [j.score for j in judged],
                             "reference_chosen": sum(c.sample == REFERENCE
                                                     for c, _ in choice.pairs)})
            if choice.reason:
                detail = (f"all {len(judged)} samples within {cfg.min_margin} of each other"
                          if choice.reason == "tied" else
                          f"{choice.reason} ({len(judged)} samples)")
                rejects.append({"source": src["file"], "line": src["line"],
                                "reason": "no_pairs", "detail": f"{pair['id']}: {detail}"})
    return splits, rejects, outcomes


def write_outputs(cfg: PairsConfig, out: Path, data_hash: str, splits, rejects, records,
                  outcomes, prompts, timing, engine: str) -> dict[str, Any]:
    outputs: dict[str, str] = {}
    for name in ("train", "val", "test"):
        rows = splits.get(name, [])
        outputs[f"{name}.jsonl"] = write_atomic(
            out / f"{name}.jsonl",
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
    outputs["rejects.jsonl"] = write_atomic(
        out / "rejects.jsonl", "".join(json.dumps(r) + "\n" for r in rejects).encode())
    records.sort(key=lambda r: (r["split"] != "train", r["prompt_id"], r["sample"]))
    write_atomic(out / SAMPLES,
                 "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode())
    outputs[SAMPLES] = sha256_of(out / SAMPLES)
    counts = {name: {"pair": len(splits.get(name, [])), "unpaired": 0}
              for name in ("train", "val", "test")}
    counts["rejected"] = {"no_pairs": len(rejects)} if rejects else {}
    summary = {"model": cfg.model, "data": cfg.data,
               "samples_per_prompt": cfg.generation.samples, "preset": cfg.generation.preset,
               "max_tokens": cfg.generation.max_tokens, "seed": cfg.seed, "engine": engine,
               "min_margin": cfg.min_margin, "pairs_per_prompt": cfg.pairs_per_prompt,
               "with_reference": cfg.with_reference,
               "reference_chosen": sum(o.get("reference_chosen", 0) for o in outcomes),
               "prompts": {s: len(prompts[s]) for s in SPLITS},
               "pairs": {s: len(splits[s]) for s in SPLITS}}
    outputs["report.md"] = write_atomic(out / "report.md",
                                        markdown(summary, records, outcomes).encode())
    manifest = {
        "kind": "preference", "made_by": "pairs",
        "inputs": [{"path": cfg.data, "sha256": data_hash, "format": "curated",
                    "records": sum(len(v) for v in prompts.values()),
                    "kept": sum(1 for o in outcomes if o["pairs"])}],
        "counts": counts, "outputs": outputs, "config": to_dict(cfg),
        "samples": {"stories": len(records),
                    "hollow": sum(bool(r["judgement"]["hollow"]) for r in records),
                    **timing},
    }
    write_atomic(out / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    return counts


def run(cfg: PairsConfig) -> PairsResult:
    from storyteller.models import inspect_model

    for key, flag in (("model", "--model"), ("data", "--data"), ("out", "--out")):
        if not getattr(cfg, key):
            raise InputError.at(flag, f"no {key} given", f"pass {flag} (see storyteller pairs "
                                                         "--help)")
    data, out = Path(cfg.data), Path(cfg.out)
    check_out(cfg, out, data)
    data_hash = manifest_hash(data)
    prompts = choose_prompts(cfg, data)
    endpoint = cfg.generation.engine == "endpoint" or bool(cfg.generation.endpoint)
    source = None if endpoint else inspect_model(cfg.model)
    out.mkdir(parents=True, exist_ok=True)
    import yaml

    write_atomic(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False).encode())
    with console.steps() as steps:
        records, timing = generate(cfg, prompts, source, out, steps)
    for record in records:  # stories reused from an earlier run are judged by today's judge
        record["judgement"] = judge_story(judged_text(record), record["controls"],
                                          record["finish_reason"]).to_json()
    splits, rejects, outcomes = build(cfg, prompts, records)
    engine = ", ".join(sorted({r["engine"] for r in records})) or "none"
    counts = write_outputs(cfg, out, data_hash, splits, rejects, records, outcomes, prompts,
                           timing, engine)
    if not console.quiet():
        rows = [[s, len(prompts[s]), counts[s]["pair"]] for s in SPLITS]
        console.console.print(console.table("Self-judged pairs", ["split", "prompts", "pairs"],
                                            rows))
    return PairsResult(out, counts)
