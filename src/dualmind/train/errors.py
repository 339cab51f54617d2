"""Which errors of a training run are the user's to fix, and how train.py shows them.

Each is one line on stderr, `error: ...`, and exit code 2, like `--dry-run` and the config
checks: a traceback says "bug" to the reader, and these are not bugs but a wrong path, key,
checkpoint or corpus, whose message already names it. Anything else keeps its traceback.
"""

from __future__ import annotations

import re


def user_error_types() -> tuple[type[BaseException], ...]:
    """The project's error types that mean bad input or config (imported when asked: most pull
    torch in, and train.py asks only once a run has failed)."""
    from dualmind.adapters.lora import AdapterError
    from dualmind.checkpoint.export import ExportError
    from dualmind.checkpoint.frozen_core import CoreCheckpointError, CorePairingError
    from dualmind.checkpoint.meta import LexiconMismatchError
    from dualmind.config.schema import ConfigError  # also RunPathError, AdapterConfigError
    from dualmind.data.open_corpus import DataConfigError
    from dualmind.data.schema import SchemaError
    from dualmind.data.shards import ShardError
    from dualmind.distributed.parallel import ParallelConfigError
    from dualmind.lexicon.units import LexiconError
    from dualmind.model.attention import BackendUnavailable
    from dualmind.model.config import ConfigError as ModelConfigError
    from dualmind.train.loop import TrainingError
    from dualmind.train.module import NonFiniteLossError

    return (TrainingError, ConfigError, ModelConfigError, DataConfigError, NonFiniteLossError,
            CoreCheckpointError, CorePairingError, LexiconMismatchError, LexiconError,
            ShardError, SchemaError, AdapterError, ExportError, ParallelConfigError,
            BackendUnavailable)


def one_line(err: BaseException) -> str:
    """The message on one line: a wrapped library message (torch's advice on weights_only runs
    to several) must not break the `error: ...` line that scripts and tests read."""
    return re.sub(r"\s*\n\s*", " ", str(err)).strip()
