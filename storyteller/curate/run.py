"""`storyteller curate`: read → clean → filter → dedup → tag → pairs → augment → split → write.

The run is planned as stages of tasks (`storyteller/curate/stages/`) that hand each other files
in a work folder, run here (`resources.executor: local`) or by datatrove; this module plans the
run, guards `--resume`, and reports what was written."""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from storyteller import console
from storyteller.config import to_dict
from storyteller.curate.config import CurateConfig
from storyteller.curate.prepare import WorkerDied
from storyteller.curate.preview import MATTER, InputReading, Tally
from storyteller.curate.records import RawStory
from storyteller.curate.sources import expand_inputs
from storyteller.curate.stages import Plan, make_plan
from storyteller.curate.stages.read import input_records
from storyteller.curate.work import Work
from storyteller.errors import ConfigError, InputError, Problem, StorytellerError

DUPLICATE_REASONS = ("duplicate_exact", "duplicate_near")


@dataclass
class CurateResult:
    out: Path
    manifest: dict[str, Any]
    rejects: list[dict[str, Any]] = field(default_factory=list)


def preview(paths: Sequence[str], config: CurateConfig) -> list[InputReading]:
    """What curate would read from `paths`, without writing anything."""
    readings = []
    inputs = expand_inputs(list(paths), config.source.format)
    with console.steps() as track:
        for index, (location, fmt) in enumerate(track.track(inputs, "reading inputs")):
            records, reading = input_records(location, fmt, config.source)
            tally = Tally([{"path": location, "format": fmt,
                            **({"reading": reading} if reading else {})}],
                          config.source.format, first_input=index)
            for item in records:
                if isinstance(item, RawStory):
                    item.input = index
                tally.add(item)
            readings.extend(tally.finish())
    return readings


def fingerprint(plan: Plan) -> dict[str, Any]:
    """What a resumed run must share with the run it continues: the inputs as they were (size
    and time of change), how they were divided into tasks, and every setting of the output."""
    settings = to_dict(plan.config)
    settings.pop("resources")
    settings.pop("workers")  # how many processes share the work changes nothing it makes
    files = []
    for location, fmt in plan.inputs:
        path = Path(location)
        stat = path.stat() if path.exists() else None
        files.append([location, fmt, stat.st_size if stat else None,
                      stat.st_mtime_ns if stat else None])
    return {"inputs": files, "groups": plan.groups, "config": settings}


def prepare_work(plan: Plan, resume: bool) -> Work:
    work = Work(plan.work)
    current = json.loads(json.dumps(fingerprint(plan)))
    previous = work.read_json(("plan.json",)) if work.exists(("plan.json",)) else None
    if resume and previous is not None:
        if previous != current:
            changed = [key for key in ("inputs", "groups", "config") if previous.get(key) != current[key]]
            raise ConfigError(*[Problem(f"--resume {plan.out}", f"the {key} changed since the run "
                                        "started", "resume with the same inputs and settings, or "
                                        "run without --resume to start over") for key in changed])
        return work
    if previous is not None and not console.quiet():
        console.console.print(f"note: starting over; the unfinished run in {plan.work} is "
                              "discarded (--resume would have continued it)")
    work.clear()
    work.makedirs()
    work.write_json(("plan.json",), current)
    return work


def run(paths: Sequence[str], out: str | Path, config: CurateConfig,
        resume: bool = False) -> CurateResult | None:
    """Curate `paths` into `out`; None where the work was submitted to a cluster."""
    out = Path(out)
    plan = make_plan(paths, out, config)
    work = prepare_work(plan, resume)
    try:
        if config.resources.executor == "datatrove":
            from storyteller.curate.engine import run_datatrove

            if not run_datatrove(plan):
                console.console.print(f"submitted: the stages run as Slurm jobs; OUT is {out}. "
                                      "Follow them with squeue; rerun the same command with "
                                      "--resume to finish any that failed.")
                return None
        else:
            from storyteller.curate.executors import run_local

            run_local(plan)
    except WorkerDied as error:
        raise StorytellerError(Problem(plan.work, str(error),
                                       "everything finished so far is kept: rerun the same "
                                       "command with --resume")) from None
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        raise StorytellerError(Problem(error.filename or plan.work, "the disk is full",
                                       "free some space (or point resources.work_dir elsewhere "
                                       "for the intermediate files), then rerun with "
                                       "--resume")) from None
    except BaseException:
        if not console.quiet():
            console.console.print(f"note: finished tasks are kept in {plan.work}; rerun with "
                                  "--resume to go on from them")
        raise
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    rejects = [json.loads(line) for line in
               (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    if not config.resources.keep_work:
        work.clear()
    result = CurateResult(out, manifest, rejects)
    print_summary(result)
    check_bad_share(manifest, config, out)
    if not manifest["counts"]["stories_kept"]:
        raise InputError.at(str(out / "rejects.jsonl"), "no story survived curation",
                            "look at rejects.jsonl for the reasons")
    return result


def check_bad_share(manifest: dict[str, Any], config: CurateConfig, out: Path) -> None:
    counts = manifest["counts"]
    # Duplicates and a book's front and back matter are expected, not bad records.
    bad = sum(n for reason, n in counts["rejected"].items()
              if reason not in DUPLICATE_REASONS + MATTER)
    read = counts["records_read"]
    if read and bad / read > config.filters.max_bad_share:
        raise StorytellerError(Problem(
            str(out / "rejects.jsonl"),
            f"{bad} of {read} records ({bad / read:.0%}) were rejected, more than "
            f"filters.max_bad_share = {config.filters.max_bad_share:.0%}",
            "everything else was written; look at rejects.jsonl, fix the input or raise the limit"))


def print_summary(result: CurateResult) -> None:
    counts = result.manifest["counts"]
    rows = [("records read", counts["records_read"]), ("stories read", counts["stories_read"]),
            ("stories kept", counts["stories_kept"]),
            ("exact duplicates", counts["duplicates"]["exact"]),
            ("near duplicates", counts["duplicates"]["near"])]
    rows += [(f"rejected: {reason}", n) for reason, n in counts["rejected"].items()
             if reason not in DUPLICATE_REASONS]
    rows += [(f"pairs: {name}", n) for name, n in counts["pairs"].items()]
    if not console.quiet():
        console.console.print(console.table(f"curated → {result.out}", ["", "count"], rows))
