"""`storyteller evaluate`: base versus tuned on the test prompts, by automatic story metrics.
Human judgement of the same stories is `storyteller.ratings`."""
