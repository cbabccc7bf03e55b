"""The rule that hands a preference-tuned model on: house style better beyond its interval,
and nothing guarded worse beyond its own."""

from storyteller.improve.decide import GUARDS, decide


def row(old, new, low, high, label="metric"):
    return {"label": label, "values": {"base": {"value": old}, "tuned": {"value": new}},
            "difference": {"value": new - old, "low": low, "high": high, "n": 30}}


def summary(style=(0.37, 0.72, 0.2, 0.5), **overrides):
    table = {"style_pass": row(*style, label="house style followed"),
             "perplexity": row(12.0, 12.3, -0.2, 0.8, "perplexity"),
             "stop_rate": row(0.9, 0.88, -0.1, 0.05, "stop rate"),
             "distinct_2": row(0.6, 0.61, -0.02, 0.04, "distinct-2"),
             "memorised_8gram_share": row(0.01, 0.01, -0.01, 0.01),
             "longest_copied_span": row(9, 10, -2, 3),
             "hollow": row(0.0, 0.02, -0.01, 0.05, "hollow style")}
    table.update(overrides)
    return {"metrics": table}


def test_accepts_a_model_that_keeps_its_styles_better_and_loses_nothing():
    decision = decide(summary())
    assert decision.accept, decision.reason
    assert {f.metric: f.verdict for f in decision.findings}["style_pass"] == "improved"


def test_a_point_gain_inside_its_interval_is_not_enough():
    decision = decide(summary(style=(0.37, 0.45, -0.05, 0.21)))
    assert not decision.accept and "did not improve" in decision.reason


def test_each_guard_blocks_in_its_own_direction():
    worse = {"perplexity": row(12.0, 14.0, 0.9, 3.1, "perplexity"),
             "stop_rate": row(0.9, 0.6, -0.45, -0.12, "stop rate"),
             "distinct_2": row(0.6, 0.5, -0.15, -0.05, "distinct-2"),
             "hollow": row(0.0, 0.3, 0.1, 0.5, "hollow style")}
    for metric, bad in worse.items():
        decision = decide(summary(**{metric: bad}))
        assert not decision.accept and bad["label"] in decision.reason, metric
    # better than before in the same metrics never blocks
    better = {"perplexity": row(12.0, 10.0, -3.0, -1.0), "stop_rate": row(0.6, 0.9, 0.1, 0.4)}
    assert decide(summary(**better)).accept


def test_unmeasured_guards_are_named_and_a_missing_style_comparison_refuses():
    table = summary()["metrics"]
    del table["hollow"]
    decision = decide({"metrics": table})
    assert decision.accept and "not measured: hollow" in decision.reason
    assert not decide({"metrics": {"perplexity": table["perplexity"]}}).accept
    assert {metric for metric, _ in GUARDS} >= {"perplexity", "stop_rate", "distinct_2"}
