"""storyteller: curate story corpora, fine-tune story models, evaluate, serve and write with them."""

import logging

__version__ = "0.1.0"

# On a CPU with AVX512-BF16, bitsandbytes (imported by peft) tries to fetch an optional 4-bit
# kernel from a model hub and logs a warning when it cannot; storyteller runs offline and the
# built-in kernel serves, so the warning would only alarm.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
