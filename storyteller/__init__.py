"""storyteller: curate story corpora, fine-tune story models, evaluate, serve and write with them."""

__version__ = "0.1.0"
