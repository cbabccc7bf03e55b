import random

from storyteller.curate.dedup import Signer, exact_duplicates, exact_key, near_duplicate_clusters
from storyteller.curate.split import assign_splits

WORDS = ("river lantern orchard copper whistle meadow harbor violin thistle pepper ember glacier "
         "saddle marble willow falcon quarry velvet cinder hollow barley compass ribbon tundra "
         "pebble sorrel anchor juniper beacon ledger").split()


def story(rng, n=150):
    return " ".join(rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(n))


def edit(text, share, rng):
    tokens = text.split()
    for i in rng.sample(range(len(tokens)), int(share * len(tokens))):
        tokens[i] = "edited" + str(rng.randrange(10**6))
    return " ".join(tokens)


def test_exact_key_ignores_case_spacing_and_punctuation():
    assert exact_key("The cat, sat!") == exact_key("  the CAT sat ")
    assert exact_key("The cat sat") != exact_key("The cat stood")
    assert exact_duplicates(["a", "b", "a", "a"]) == {2: 0, 3: 0}


def test_near_duplicates_with_5_to_10_percent_edits_are_clustered():
    rng = random.Random(1)
    originals = [story(rng) for _ in range(40)]
    texts = originals + [edit(originals[i], 0.05 + 0.05 * (i % 2), rng) for i in range(10)]
    signer = Signer(128, 3)
    signed = [signer.sign_with_set(t) for t in texts]
    clusters = near_duplicate_clusters([s[0] for s in signed], 0.5, 128,
                                       shingle_sets=[s[1] for s in signed])
    found = {(c.representative, m) for c in clusters for m in c.members}
    assert found == {(i, 40 + i) for i in range(10)}
    assert all(0.5 <= s <= 1 for c in clusters for s in c.similarity.values())


def test_unrelated_stories_are_not_clustered():
    rng = random.Random(2)
    signer = Signer(128, 3)
    texts = [story(rng) for _ in range(60)]
    signed = [signer.sign_with_set(t) for t in texts]
    assert near_duplicate_clusters([s[0] for s in signed], 0.5, 128,
                                   shingle_sets=[s[1] for s in signed]) == []
    # Without the sets, the MinHash estimate decides.
    assert near_duplicate_clusters([s[0] for s in signed], 0.5, 128) == []


def test_many_small_strata_keep_the_overall_fractions():
    groups = {f"g{i}": f"genre{i // 4}" for i in range(120)}  # 30 genres of 4 stories
    splits = list(assign_splits(groups, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0).values())
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (96, 12, 12)


def test_tiny_input_goes_to_train_first():
    assert assign_splits({"only": "fable"}, {"train": 0.8, "val": 0.1, "test": 0.1}, 0) == {"only": "train"}


def test_split_is_by_group_stratified_and_deterministic():
    groups = {f"g{i}": ("fable" if i % 2 else "mystery") for i in range(40)}
    first = assign_splits(groups, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=3)
    assert first == assign_splits(dict(reversed(list(groups.items()))),
                                  {"train": 0.8, "val": 0.1, "test": 0.1}, seed=3)
    assert set(first) == set(groups)
    for genre in ("fable", "mystery"):
        splits = [first[g] for g, s in groups.items() if s == genre]
        assert (splits.count("train"), splits.count("val"), splits.count("test")) == (16, 2, 2)
    other = assign_splits(groups, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=4)
    assert other != first
