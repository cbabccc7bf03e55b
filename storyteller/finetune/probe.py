"""The probe: what the model being trained writes, scored, at every evaluation.

Validation loss says how well the model predicts held-out stories; it does not say whether the
model keeps the house style it is asked for, or ends its stories. On the quickstart the
checkpoint with the lowest validation loss had learned the fewest styles (docs/BENCHMARKS.md).
The probe is a fixed set of validation prompts, most of them asking for a house style, spread
over the styles; at each evaluation the model writes a story for each, in one batch, and the
stories are judged: house-style adherence, how many ended by themselves (stop rate), how many
are hollow (reward hacks the judge names). `eval.select` can then choose the checkpoint by it.

Like the sample story (samples.py) the probe only reads the weights: eval mode while it runs,
the random state forked and put back, the training attention restored, so a run that probes
trains exactly as one that does not, and a resumed run as an uninterrupted one."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyteller.styles import HOUSE_STYLES, check_style

# Whole-story requests only: an opening's house style is judged with the opening it was given
# and a continuation window is only part of a story (as storyteller evaluate does).
PARTIAL_KINDS = ("opening", "continuation")


@dataclass(frozen=True)
class ProbePrompt:
    id: str
    messages: tuple[dict[str, str], ...]  # system and user, as a client of the endpoint sends
    controls: dict[str, Any]
    style: str | None  # the house style asked for, None for a plain prompt
    seed: int  # the prompt's own sampling seed, used when probe_temperature > 0


@dataclass(frozen=True)
class Verdict:
    """A probe story's judgement: style kept (None: no house style asked), hollow reasons (None:
    no judge of hollowness available), and the judge's overall score when it gives one."""
    style_passed: bool | None
    hollow: tuple[str, ...] | None = None
    score: float | None = None


Judge = Callable[[str, dict[str, Any], "str | None"], Verdict]


def house_style(controls: dict[str, Any]) -> str | None:
    style = str((controls or {}).get("style") or "").strip().lower()
    return style if style in HOUSE_STYLES else None


def prompt_messages(record: dict[str, Any]) -> list[dict[str, str]] | None:
    """The messages before the story: a curated SFT pair's `messages[:-1]`, or a preference
    record's `prompt` (contracts: the last message is never the assistant's)."""
    if isinstance(record.get("prompt"), list):
        messages = record["prompt"]
    elif isinstance(record.get("messages"), list) and record["messages"]:
        messages = record["messages"][:-1]
    else:
        return None
    if not messages or messages[-1].get("role") == "assistant":
        return None
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def whole_story_request(record: dict[str, Any]) -> bool:
    request = record.get("request") or {}
    return record.get("kind") not in PARTIAL_KINDS and not request.get("opening") \
        and not request.get("context")


def _order(seed: int, record_id: str) -> str:
    """A seeded order that depends on the id only, not on where the record is in its file."""
    return hashlib.sha256(f"{seed}:{record_id}".encode()).hexdigest()


def probe_prompts(records: Sequence[dict[str, Any]], styled: int, plain: int,
                  seed: int = 0) -> list[ProbePrompt]:
    """The fixed probe set: up to `styled` whole-story prompts asking for a house style, taken a
    style at a time in turn (so every style present is probed and none crowds the others out),
    then up to `plain` without one. Groups are spread too: a story's premise and title requests
    share a group, and a second prompt of a group comes only once every group has given one.
    The same prompt twice (a preference prompt's several records) counts once. Records are
    taken in a seeded order of their ids, so the set does not depend on the file's order."""
    ranked = sorted(records, key=lambda r: _order(seed, str(r.get("id", ""))))
    seen_prompts: set[str] = set()
    per_group: dict[str, int] = {}
    found = []  # (nth of its group, rank, id, controls, messages)
    for position, record in enumerate(ranked):
        messages = prompt_messages(record)
        if messages is None or not whole_story_request(record):
            continue
        key = repr(messages)
        if key in seen_prompts:
            continue
        seen_prompts.add(key)
        group = str(record.get("group") or record.get("id"))
        nth = per_group[group] = per_group.get(group, -1) + 1
        found.append((nth, position, str(record.get("id", group)),
                      dict(record.get("controls") or {}), messages))
    candidates: dict[str | None, list[tuple[str, dict[str, Any], list[dict[str, str]]]]] = {}
    for _, _, rid, controls, messages in sorted(found, key=lambda f: f[:2]):
        candidates.setdefault(house_style(controls), []).append((rid, controls, messages))
    chosen: list[tuple[str, dict[str, Any], list[dict[str, str]]]] = []
    queues = [list(candidates[s]) for s in sorted(s for s in candidates if s is not None)]
    while len(chosen) < styled and any(queues):
        for queue in queues:
            if queue and len(chosen) < styled:
                chosen.append(queue.pop(0))
    chosen += candidates.get(None, [])[:plain]
    return [ProbePrompt(rid, tuple(messages), controls, house_style(controls),
                        int(_order(seed, rid)[:8], 16))
            for rid, controls, messages in chosen]


def style_judge(text: str, controls: dict[str, Any], finish_reason: str | None) -> Verdict:
    """The house-style checks alone (storyteller.styles): no judge of hollowness."""
    style = house_style(controls)
    verdict = check_style(style, text) if style else None
    return Verdict(verdict.passed if verdict is not None else None)


def default_judge() -> Judge:
    """storyteller.judge.judge_story where the project has it (style, hollowness, score);
    otherwise the house-style checks alone."""
    try:
        from storyteller.judge import judge_story
    except ImportError:
        return style_judge

    def judge(text: str, controls: dict[str, Any], finish_reason: str | None) -> Verdict:
        found = judge_story(text, controls, finish_reason)
        style_passed = found.style_passed if house_style(controls) else None
        return Verdict(style_passed, tuple(found.hollow), float(found.score))

    return judge


def _rate(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def score_stories(prompts: Sequence[ProbePrompt], texts: Sequence[str],
                  finish_reasons: Sequence[str | None], judge: Judge = style_judge,
                  ) -> tuple[dict[str, Any], list[Verdict]]:
    """The probe's metrics for one evaluation's stories, and each story's verdict.

    style_adherence: share of house-style prompts whose story keeps the style; adherence_<style>
    per style; stop_rate: share of all stories that ended by themselves (not cut at
    probe_tokens); hollow_rate: share the judge calls hollow (None without a judge of it);
    judge_score: the judge's mean score, where it gives one."""
    verdicts = [judge(text, dict(p.controls), reason)
                for p, text, reason in zip(prompts, texts, finish_reasons)]
    styled = [(p.style, v.style_passed) for p, v in zip(prompts, verdicts)
              if p.style and v.style_passed is not None]
    metrics: dict[str, Any] = {
        "style_adherence": _rate([passed for _, passed in styled]),
        "stop_rate": _rate([reason == "stop" for reason in finish_reasons]),
        "hollow_rate": _rate([bool(v.hollow) for v in verdicts if v.hollow is not None]),
    }
    scores = [v.score for v in verdicts if v.score is not None]
    if scores:
        metrics["judge_score"] = sum(scores) / len(scores)
    for style in sorted({s for s, _ in styled}):
        metrics[f"adherence_{style}"] = _rate([passed for s, passed in styled if s == style])
    return metrics, verdicts


class Probe:
    """`probe(step)` → (metrics, stories): the probe set written by the model as it is now."""

    def __init__(self, model, tokenizer, prompts: Sequence[ProbePrompt], max_tokens: int,
                 temperature: float = 0.0, autocast=None, mode_of=None, judge: Judge | None = None):
        from storyteller.finetune.model import causal_lm
        from storyteller.prompts import prompt_ids
        from storyteller.sampling import Sampling

        self.lm = causal_lm(model)  # adapter layers are injected in place: this runs them
        self.mode_of = mode_of if mode_of is not None else self.lm
        self.tokenizer, self.prompts = tokenizer, list(prompts)
        self.ids = [prompt_ids(tokenizer, p.messages) for p in self.prompts]
        self.sampling = (Sampling.from_preset("greedy", max_tokens=max_tokens) if temperature <= 0
                         else Sampling.from_preset("story", max_tokens=max_tokens,
                                                   temperature=temperature))
        self.autocast = autocast
        self.judge = judge or default_judge()

    def __call__(self, step: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from storyteller.finetune.samples import write_unchanged

        # One CPU thread (write_unchanged): even at batch 10 a decoding step is small, and on a
        # busy 2-core machine ten stories of 32 tokens took 19.2 s on one thread, 111.8 s on two.
        started = time.perf_counter()
        stories = write_unchanged(self.lm, self.mode_of, self.tokenizer, self.ids,
                                  [p.seed for p in self.prompts], self.sampling, self.autocast)
        metrics, verdicts = score_stories(self.prompts, [s.text for s in stories],
                                          [s.finish_reason for s in stories], self.judge)
        seconds = time.perf_counter() - started
        metrics["probe_seconds"] = round(seconds, 2)
        metrics["probe_tokens"] = sum(s.new_tokens for s in stories)
        records = [{"step": step, "id": p.id, "style": p.style, "controls": p.controls,
                    "prompt": p.messages[-1]["content"], "story": s.text,
                    "finish_reason": s.finish_reason, "tokens": s.new_tokens,
                    "style_passed": v.style_passed,
                    "hollow": list(v.hollow) if v.hollow is not None else None}
                   for p, s, v in zip(self.prompts, stories, verdicts)]
        return metrics, records


def make_probe(cfg, accelerator, model, loss_model, tokenizer, val_records) -> Probe | None:
    """The run's probe on the main process, or None: not probing, no validation, not the main
    process. Refuses what cannot select: no house-style prompt in the validation split, FSDP."""
    from accelerate.utils import DistributedType

    from storyteller.curated import split_label
    from storyteller.errors import ConfigError, InputError

    e = cfg.eval
    where = split_label(Path(cfg.data.dir), "val")
    if not e.probing or not e.every_steps:
        return None
    prompts = probe_prompts(val_records, e.probe_styled, e.probe_plain, e.probe_seed)
    styled = sum(p.style is not None for p in prompts)
    if e.select != "loss" and not styled:
        raise InputError.at(where, f"eval.select: {e.select} needs validation "
                            "prompts that ask for a house style (" + ", ".join(HOUSE_STYLES)
                            + "), and there are none", "curate data with house styles, or use "
                            "eval.select=loss")
    if not prompts:
        raise InputError.at(where, "eval.probe needs whole-story validation "
                            "prompts, and there are none", "set eval.probe=false")
    if accelerator.distributed_type == DistributedType.FSDP:
        raise ConfigError.at("eval.select" if e.select != "loss" else "eval.probe",
                             "the probe cannot run under FSDP (sharded weights run forward "
                             "only as a group)", "use eval.select=loss and eval.probe=false")
    if not accelerator.is_main_process:
        return None
    return Probe(model, tokenizer, prompts, e.probe_tokens, e.probe_temperature,
                 accelerator.autocast, mode_of=loss_model)
