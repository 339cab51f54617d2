"""Loading what a report looks at: the core (any stage), its decoder if it has one, the lexicon
that turns text into the core's symbols, the decoder's text tokenizer, and a second core to
compare with (another checkpoint of the same shape, or an adapter folder on this core).

Checkpoints are read by ``dualmind.evaluate.load.read_models``, the loader of `dualmind eval`,
asked for cores of every stage: a report shows a core alone too.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


class VizError(ValueError):
    """Something the report cannot use; the message names the path or option."""


@dataclass
class Models:
    core: torch.nn.Module
    decoder: torch.nn.Module | None
    meta: dict
    source: Path  # the .ckpt file or export folder actually read
    run_cfg: dict = field(default_factory=dict)  # the training run's config, when recorded


def _checkpoint_file(path: Path) -> Path:
    from dualmind.checkpoint.export_sharded import is_sharded_checkpoint

    if path.is_dir() and not is_sharded_checkpoint(path):
        path = path / "checkpoints" / "last.ckpt"
    if is_sharded_checkpoint(path):
        raise VizError(f"{path} is a sharded (FSDP/DCP) checkpoint; export it first "
                       "(`dualmind export`) and pass the export folder")
    if not path.is_file():
        raise VizError(f"{path}: no checkpoint (pass a .ckpt, a run folder or an export folder)")
    return path


def _is_export(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def load(checkpoint: str | Path) -> Models:
    """The core and (for an align run) decoder of a checkpoint, run folder or export folder,
    read by the same loader as `dualmind eval`, for cores of every stage."""
    from dualmind.evaluate.load import read_models
    from dualmind.evaluate.report import EvalError

    path = Path(checkpoint)
    if not _is_export(path):
        path = _checkpoint_file(path)
    try:
        core, decoder, meta, run_cfg = read_models(path, stages=None)
    except EvalError as err:
        raise VizError(str(err)) from err
    if meta.get("stage") == "lm":
        raise VizError(f"{path}: a stage-lm BPE baseline has no hyper-core to look inside; "
                       "pass a core or align checkpoint")
    return Models(core, decoder, meta, path, run_cfg)


def load_lexicon(lexicon_dir: str | Path | None, models: Models):
    """The lexicon that encodes text for this core: ``lexicon_dir``; else the run's
    ``data.lexicon`` when that is a folder; else a lexicon folder beside the run's corpus
    (``make demo``'s layout) whose fingerprint is the checkpoint's. The fingerprint must match."""
    from dualmind.lexicon.lexicon import Lexicon

    if lexicon_dir is None:
        lexicon_dir = _recorded_lexicon(models)
    if lexicon_dir is None:
        raise VizError(f"{models.source}: pass the lexicon folder the core was trained with "
                       f"(--lexicon; fingerprint {models.meta.get('lexicon_fingerprint')}); "
                       "it turns the text into the core's symbols")
    lexicon = Lexicon.load(lexicon_dir)
    expected = models.meta.get("lexicon_fingerprint")
    if expected and lexicon.fingerprint != expected:
        raise VizError(f"lexicon {lexicon_dir} has fingerprint {lexicon.fingerprint}, but "
                       f"{models.source} was trained with lexicon {expected}")
    return lexicon, Path(lexicon_dir)


def _recorded_lexicon(models: Models) -> Path | None:
    from dualmind.lexicon.lexicon import HEADER_FILE

    data = models.run_cfg.get("data") or {}
    recorded = data.get("lexicon")
    if isinstance(recorded, str) and Path(recorded).is_dir():
        return Path(recorded)
    want = models.meta.get("lexicon_fingerprint")
    if not data.get("dir") or not want:
        return None
    for header in sorted(Path(data["dir"]).parent.glob(f"*/{HEADER_FILE}")):
        try:
            found = json.loads(header.read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, ValueError):
            continue  # not a lexicon header after all
        if found == want:
            return header.parent
    return None


@dataclass
class TextTokenizer:
    tokenizer: Any
    bos: int
    eos: int
    path: Path


def text_tokenizer(models: Models) -> tuple[TextTokenizer | None, str]:
    """The decoder's BPE tokenizer, found where the bridge finds it
    (dualmind.data.text_tokenizer.find_text_tokenizer: beside an export folder or in its parent,
    else the run's corpus folder); (None, why) when it cannot be found, so the report says why the
    decoder panel is missing."""
    from dualmind.data.text_tokenizer import (
        SPECIAL_TOKENS,
        find_text_tokenizer,
        load_text_tokenizer,
    )

    path, why = find_text_tokenizer(models.source, (models.run_cfg.get("data") or {}).get("dir"))
    if path is None:
        return None, why
    tok = load_text_tokenizer(path)
    bos, eos = (tok.token_to_id(t) for t in SPECIAL_TOKENS[1:3])
    if bos is None or eos is None:
        return None, f"{path} has no {SPECIAL_TOKENS[1]} / {SPECIAL_TOKENS[2]} tokens"
    return TextTokenizer(tok, int(bos), int(eos), path), ""


def _adapter_loader():
    try:
        from dualmind.adapters.lora import load_adapter
    except ImportError:
        return None
    return load_adapter


def load_compare(compare: str | Path, base: Models) -> tuple[torch.nn.Module, str]:
    """(the other core, a description): a checkpoint / run / export folder of the same shape, or
    an adapter folder applied to a copy of the base core (needs ``dualmind.adapters``)."""
    path = Path(compare)
    is_model = _is_export(path) or path.is_file() or (path / "checkpoints" / "last.ckpt").is_file()
    if not is_model:
        if not path.is_dir():
            raise VizError(f"--compare {path}: no such checkpoint or folder")
        load_adapter = _adapter_loader()
        if load_adapter is None:
            raise VizError(f"--compare {path} is neither a checkpoint nor an export folder, and "
                           "adapter folders need dualmind.adapters.load_adapter, which this "
                           "install lacks; merge the adapter into a checkpoint first")
        try:  # AdapterError (a ValueError) names both core fingerprints on a mismatch
            other = load_adapter(copy.deepcopy(base.core), path)
        except ValueError as err:
            raise VizError(f"--compare {path}: {err}") from err
        return other.eval(), f"base core + adapter {path}"
    other = load(path)
    a, b = base.core.cfg, other.core.cfg
    if (a.n_layers, a.dim, a.vocab_size) != (b.n_layers, b.dim, b.vocab_size):
        raise VizError(f"--compare {path}: shape (layers {b.n_layers}, dim {b.dim}, vocab "
                       f"{b.vocab_size}) differs from {base.source}'s (layers {a.n_layers}, dim "
                       f"{a.dim}, vocab {a.vocab_size}); compare cores of the same shape")
    return other.core, f"{other.source} (stage {other.meta.get('stage')})"
