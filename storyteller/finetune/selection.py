"""Which evaluation is the best (`eval.select`): pure functions of the evaluation records.

Each evaluation gets a rank (a tuple, higher is better) when it is made, from its own record and
the evaluations before it, never from later ones. So the best is always the current evaluation
or the one already kept: only checkpoints that were the best when they were saved are ever
needed (checkpoint.keep_best keeps exactly that one).

- loss: the lowest validation loss (with eval.min_delta, as before selection existed).
- style: the most probe stories that keep their house style; ties go to more stories that end
  by themselves, then to the lower loss.
- mixed: among evaluations whose validation loss is within `margin` (a fraction) of the lowest
  seen up to and including them, the highest adherence + stop rate − hollow rate, ties to the
  lower loss. Style alone follows whatever the probe rewards, including a checkpoint that has
  begun to overfit (its loss rising) on a probe of a few prompts; the margin keeps the choice
  where the model still predicts held-out stories about as well as it ever did. Stopping counts
  because a story that runs to the token limit is cut off for the writer; hollow stories are
  style kept by a trick (a moral tacked on, a refrain repeated), not by writing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SELECTIONS = ("loss", "style", "mixed")


def rank(select: str, entry: dict[str, Any], before: Sequence[dict[str, Any]],
         margin: float) -> tuple[float, ...] | None:
    """The evaluation `entry`'s rank under `select` (higher is better), or None where it cannot
    be chosen (mixed: validation loss too far above the lowest so far)."""
    loss = entry["val_loss"]
    if select == "loss":
        return (-loss,)
    adherence = entry.get("style_adherence") or 0.0
    stops = entry.get("stop_rate") or 0.0
    if select == "style":
        return (adherence, stops, -loss)
    if select == "mixed":
        lowest = min([loss, *(e["val_loss"] for e in before if e.get("val_loss") is not None)])
        if not loss <= lowest + abs(lowest) * margin:  # a NaN loss is never eligible
            return None
        return (adherence + stops - (entry.get("hollow_rate") or 0.0), -loss)
    raise ValueError(f"unknown selection {select!r}; one of {', '.join(SELECTIONS)}")


def improves(select: str, new: tuple[float, ...] | None, best: Sequence[float] | None,
             min_delta: float = 0.0) -> bool:
    """Whether the rank `new` beats the best so far (`best`, None when there is none)."""
    if new is None:
        return False
    if best is None:
        return True
    if select == "loss":
        return new[0] > best[0] + min_delta
    return tuple(new) > tuple(best)


def selection_summary(select: str, final_from_best: bool, best_step: int | None,
                      final_step: int, history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """summary.json's (and final/storyteller.json's) account of the choice: how final/ was
    chosen, and the probe scores of the evaluation it came from (None: not probed there)."""
    chosen = final_from_best and best_step is not None and final_step == best_step
    entry = next((e for e in history if e.get("step") == final_step), {})
    scores = {k: v for k, v in entry.items() if k not in ("step", "val_loss", "val_ppl")}
    return {"selected_by": select if chosen else "last step",
            "final_val_loss": entry.get("val_loss"), "final_probe": scores or None}
