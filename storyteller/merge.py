"""`storyteller merge`: a run's adapter merged into its full-precision base and written as a model
directory that needs no other file — verified against base + adapter before anything is written.

The base is always loaded in fp32, also for a QLoRA run: merging into 4-bit weights would round the
adapter's update away (and NF4 alone costs a small model measurable loss, docs/BENCHMARKS.md).
The directory is built in a staging folder beside the target and renamed into place only after
the reloaded copy passes verification, so a failed or killed merge leaves no half-written model.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from storyteller import console
from storyteller.errors import InputError
from storyteller.models import ModelSource, inspect_model
from storyteller.prompts import prompt_ids

VERIFICATION = "verification.json"
METADATA = "storyteller.json"
# Tokens that end a turn in the chat templates of common model families; whichever the
# tokenizer knows become stop ids next to its eos token.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>",
                      "<end_of_turn>", "</s>")


@dataclass(frozen=True)
class Tolerances:
    """What "the merge is faithful" means, written into verification.json."""
    # Largest |logit(merged) - logit(base + adapter)| over every position of the held-out
    # prompts. fp32 merging moves logits by ~1e-5; a wrong scale or a missed layer moves them by
    # whole units.
    logits_atol: float = 1e-3
    # Held-out story perplexity of the merged model relative to base + adapter.
    perplexity_rtol: float = 0.005
    # Greedy continuation length compared token for token.
    greedy_tokens: int = 32


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    measured: float | int | str
    limit: float | int | str
    detail: str = ""


@dataclass(frozen=True)
class MergeResult:
    out: Path | None
    passed: bool
    verification: dict[str, Any]
    verification_path: Path


def stop_ids(tokenizer) -> list[int]:
    """Every token id that should end generation: the eos token and the end-of-turn tokens the
    vocabulary has. An engine that misses one runs on past the story's end."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN_TOKENS:
        if token in vocab:
            ids.add(int(vocab[token]))
    return sorted(ids)


def generation_config(tokenizer, base: dict[str, Any]) -> dict[str, Any]:
    """generation_config.json for the merged model: the base's, with every stop id."""
    config = {k: v for k, v in base.items() if not k.startswith("_")}
    config["eos_token_id"] = stop_ids(tokenizer)
    if tokenizer.pad_token_id is not None:
        config["pad_token_id"] = int(tokenizer.pad_token_id)
    if tokenizer.bos_token_id is not None:
        config["bos_token_id"] = int(tokenizer.bos_token_id)
    return config


def stories_trained_on(run_dir: Path, depth: int = 0) -> Path | None:
    """The curated stories behind a run: its own data directory, or, for a preference run
    (whose data are pairs of answers, not stories to verify on), those of the run it continued
    (--from), as far back as the chain goes."""
    if not (run_dir / "run.json").exists():
        return None
    recorded = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    data = Path(recorded.get("data", {}).get("dir", ""))
    try:
        kind = json.loads((data / "manifest.json").read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError):
        kind = None
    if kind != "preference" or depth > 8:
        return data
    try:
        meta = json.loads((run_dir / "final" / "storyteller.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return data
    started = (meta.get("from") or {}).get("path")
    return stories_trained_on(Path(started), depth + 1) if started else data


def heldout_pairs(source: ModelSource, run_dir: Path | None, data: Path | None) -> list[dict]:
    """The held-out (test split) pairs verification runs on: from `data`, else the run's own
    curated directory as run.json records it (for a preference run, that of the run it
    continued)."""
    from storyteller.curated import read_split, split_files, split_label

    if data is None and run_dir is not None:
        data = stories_trained_on(run_dir)
    if data is None or not split_files(data, "test"):  # test.jsonl or its shards
        raise InputError.at(f"model {source.ref!r}", "no held-out pairs to verify the merge on"
                            + (f" ({data}/test.jsonl is missing)" if data else ""),
                            "pass --data DIR, the curated directory the run was trained on")
    pairs = [p for p in read_split(data, "test") if p["messages"][-1]["role"] == "assistant"]
    if not pairs:
        raise InputError.at(split_label(data, "test"), "has no pairs", "pass another --data")
    return sorted(pairs, key=lambda p: p["id"])


def spread(pairs: Sequence[dict], count: int) -> list[dict]:
    """`count` pairs spread over the list (genres come in runs in a sorted split)."""
    if len(pairs) <= count:
        return list(pairs)
    step = len(pairs) / count
    return [pairs[int(i * step)] for i in range(count)]


def no_progress(items, description):
    return items


def measure(model, tokenizer, prompts: Sequence[dict], stories: Sequence[dict],
            tolerances: Tolerances, max_length: int, track=no_progress,
            label: str = "") -> dict[str, Any]:
    """What verification compares: the logits at every position of each prompt, its greedy
    continuation, and the pooled perplexity of the held-out stories. `track(items, what)` shows
    how far each part is (console.Steps.track)."""
    import torch

    from storyteller.finetune.heldout import pooled_perplexity, story_nll

    device = next(model.parameters()).device
    stops = stop_ids(tokenizer)
    logits, greedy = [], []
    with torch.inference_mode():
        for pair in track(prompts, f"{label}: logits and greedy stories"):
            ids = torch.tensor([prompt_ids(tokenizer, pair["messages"][:-1])], device=device)
            logits.append(model(input_ids=ids).logits[0].float().cpu())
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=tolerances.greedy_tokens, eos_token_id=stops,
                                 pad_token_id=tokenizer.pad_token_id or stops[0])
            greedy.append(out[0, ids.shape[1]:].tolist())
    nll, _ = story_nll(model, tokenizer, stories, max_length=max_length,
                       progress=lambda items, what: track(items, f"{label}: held-out {what}"))
    return {"logits": logits, "greedy": greedy, "perplexity": pooled_perplexity(nll),
            "story_tokens": sum(item.tokens for item in nll)}


def compare(reference: dict[str, Any], merged: dict[str, Any], tolerances: Tolerances,
            tokenizer, prompts: Sequence[dict]) -> list[Check]:
    """The three checks of a faithful merge."""
    worst = max(float((a - b).abs().max()) for a, b in zip(reference["logits"], merged["logits"]))
    checks = [Check("logits", worst <= tolerances.logits_atol, worst, tolerances.logits_atol,
                    f"largest |Δlogit| over {sum(x.numel() for x in merged['logits']):,} logits "
                    f"of {len(prompts)} held-out prompts")]
    differing = [pair["id"] for pair, a, b in zip(prompts, reference["greedy"], merged["greedy"])
                 if a != b]
    detail = f"{len(prompts)} prompts, {tolerances.greedy_tokens} greedy tokens each"
    if differing:
        first = differing[0]
        index = [p["id"] for p in prompts].index(first)
        detail += (f"; {first}: base + adapter wrote "
                   f"{tokenizer.decode(reference['greedy'][index])!r}, merged wrote "
                   f"{tokenizer.decode(merged['greedy'][index])!r}")
    checks.append(Check("greedy", not differing, f"{len(prompts) - len(differing)}/{len(prompts)}",
                        f"{len(prompts)}/{len(prompts)}", detail))
    relative = abs(merged["perplexity"] - reference["perplexity"]) / reference["perplexity"]
    checks.append(Check("perplexity", relative <= tolerances.perplexity_rtol and
                        math.isfinite(merged["perplexity"]), relative, tolerances.perplexity_rtol,
                        f"held-out perplexity {reference['perplexity']:.4f} (base + adapter) vs "
                        f"{merged['perplexity']:.4f} (merged) over {merged['story_tokens']:,} "
                        "story tokens"))
    return checks


def load_reference(source: ModelSource, device: str):
    """Base + adapter, unmerged, in fp32: what the merge must reproduce."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(source.weights, dtype=torch.float32)
    except OSError as exc:
        raise InputError.at(f"model {source.ref!r}", f"cannot load the base: {exc}".splitlines()[0],
                            "check the run's base model") from None
    if source.adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter)
    return model.to(device).eval()


def write_model(model, tokenizer, source: ModelSource, staging: Path, run_dir: Path | None) -> dict:
    """Weights, tokenizer, chat template, generation config, storyteller.json into `staging`."""
    base_generation = {}
    if isinstance(source.weights, Path) and (source.weights / "generation_config.json").exists():
        base_generation = json.loads((source.weights / "generation_config.json").read_text())
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    if not (staging / "chat_template.jinja").exists() and source.adapter is not None \
            and (source.adapter / "chat_template.jinja").exists():
        shutil.copy2(source.adapter / "chat_template.jinja", staging / "chat_template.jinja")
    (staging / "generation_config.json").write_text(
        json.dumps(generation_config(tokenizer, base_generation), indent=2) + "\n")
    metadata = dict(source.metadata)
    metadata.update({
        "merged": True, "adapter": False,
        "merged_from": str(run_dir) if run_dir else source.ref,
        "trained_with": {"method": metadata.get("method"), "lora": metadata.get("lora")},
        "stop_token_ids": stop_ids(tokenizer),
    })
    metadata.pop("lora", None)
    (staging / METADATA).write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n")
    return metadata


def model_card(name: str, metadata: dict, verification: dict) -> str:
    checks = "\n".join(f"- {c['name']}: {'passed' if c['passed'] else 'FAILED'} — {c['detail']}"
                       for c in verification["checks"])
    genres = ", ".join(metadata.get("genres") or []) or "none recorded"
    styles = ", ".join(metadata.get("styles") or []) or "none recorded"
    return "\n".join([
        f"# {name}", "",
        f"A story-writing model: `{metadata.get('base_model')}` with the adapter of "
        f"`{metadata.get('merged_from')}` merged in (fp32). It loads on its own, with no adapter "
        "and no other file.", "",
        "## Controls", "",
        "Prompts carry a plain-text header rendered by `storyteller.prompts`, e.g. "
        "`[ Genre: fable; Style: moral ]`, a house style's rule, then the request; "
        "`storyteller prompt` prints the exact messages.", "",
        f"- Genres seen in training: {genres}",
        f"- Styles seen in training: {styles}", "",
        "## Verification", "",
        "Merged model (reloaded from this directory) against base + adapter on held-out "
        "prompts and stories:", "", checks, "",
        "## Serve", "",
        "```bash", f"storyteller serve --model {verification['out']}", "```", ""])


def merge(run: str, out: Path, data: Path | None = None, tolerances: Tolerances = Tolerances(),
          prompts: int = 4, stories: int = 8, force: bool = False, steps=None) -> MergeResult:
    """Merge, reload, verify, then publish `out`; on a failed check nothing is published and the
    verification goes beside the run instead. `steps` (console.steps()) shows each part: the
    loads and the write as they run, the prompts and stories measured with counts and time
    left."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = inspect_model(run)
    run_path = Path(run)
    run_dir = run_path if (run_path / "final").is_dir() else \
        (run_path.parent if run_path.name == "final" else None)
    if out.exists() and any(out.iterdir()) and not force:
        raise InputError.at(str(out), "already exists",
                            "choose another --out, or pass --force to replace it")
    pairs = heldout_pairs(source, run_dir, data)
    chosen_prompts, chosen_stories = spread(pairs, prompts), spread(pairs, stories)
    max_length = int(source.metadata.get("max_length") or 4096)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    steps = steps if steps is not None else console.Steps(None)
    started = time.perf_counter()

    tokenizer = AutoTokenizer.from_pretrained(source.tokenizer)
    with steps.phase("merge: loading base + adapter (fp32)"):
        model = load_reference(source, device)
    reference = measure(model, tokenizer, chosen_prompts, chosen_stories, tolerances, max_length,
                        steps.track, "merge: base + adapter")
    if source.adapter is not None:
        with steps.phase("merge: merging the adapter"):
            model = model.merge_and_unload()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-merging-", dir=out.parent))
    try:
        with steps.phase("merge: writing the model"):
            metadata = write_model(model, tokenizer, source, staging, run_dir)
        del model
        with steps.phase("merge: reloading the written model"):
            reloaded = AutoModelForCausalLM.from_pretrained(staging, dtype=torch.float32)
            reloaded = reloaded.to(device).eval()
            merged_tokenizer = AutoTokenizer.from_pretrained(staging)
        merged = measure(reloaded, merged_tokenizer, chosen_prompts, chosen_stories, tolerances,
                         max_length, steps.track, "merge: merged model")
        checks = compare(reference, merged, tolerances, tokenizer, chosen_prompts)
        passed = all(c.passed for c in checks)
        verification = {
            "passed": passed, "run": run, "out": str(out), "base_model": metadata.get("base_model"),
            "device": device, "dtype": "float32", "tolerances": asdict(tolerances),
            "checks": [asdict(c) for c in checks],
            "prompts": [p["id"] for p in chosen_prompts],
            "stories": [p["id"] for p in chosen_stories],
            "seconds": round(time.perf_counter() - started, 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if not passed:
            target = (run_dir or out.parent) / f"merge-{VERIFICATION}"
            target.write_text(json.dumps(verification, indent=2) + "\n")
            return MergeResult(None, False, verification, target)
        (staging / VERIFICATION).write_text(json.dumps(verification, indent=2) + "\n")
        (staging / "README.md").write_text(model_card(out.name, metadata, verification))
        publish(staging, out)
        return MergeResult(out, True, verification, out / VERIFICATION)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, out: Path) -> None:
    """Rename the verified directory into place; an existing one (--force) is swapped out
    first and removed only after the new one is in place."""
    # mkdtemp makes the staging folder private; a model directory is meant to be shared.
    staging.chmod(0o755)
    for file in staging.iterdir():
        file.chmod(0o644)
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}-replaced-{int(time.time())}")
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
