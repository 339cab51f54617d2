"""Loading what `dualmind eval` scores: (core or baseline LM, decoder or None, metadata).

An align checkpoint (or its `dualmind export` folder) holds the frozen core beside the decoder and
records the core's weights fingerprint; the core is checked against it on every load, so a decoder
never reads a core it was not aligned to without saying so. `core=` swaps in another core source
(a stage-core checkpoint or export) for the decoder, under the same check.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from dualmind.evaluate.report import EvalError

# What `dualmind eval` scores: a decoder (stage align) or a BPE baseline (stage lm).
EVAL_STAGES = ("align", "lm")


def load_models(checkpoint: str | Path, core: str | Path | None = None
                ) -> tuple[torch.nn.Module, torch.nn.Module | None, dict]:
    """(core or baseline LM, decoder or None, metadata) of an align or lm checkpoint/export.

    core: another core checkpoint or export folder to pair with the decoder; refused (EvalError
    naming both files and fingerprints) unless its weights are the ones the decoder was aligned to.
    """
    model, decoder, meta, _ = read_models(checkpoint)
    if decoder is None:
        if core is not None:
            raise EvalError(f"{meta['path']}: a stage-lm baseline has no decoder to pair with "
                            f"the core {core}")
        return model, None, meta
    if core is not None:
        model = _swap_core(model, core, meta)
    _check_pairing(model, meta, source=str(core) if core is not None else meta["path"])
    return model, decoder, meta


def read_models(checkpoint: str | Path, stages: tuple[str, ...] | None = EVAL_STAGES
                ) -> tuple[torch.nn.Module, torch.nn.Module | None, dict, dict]:
    """(core, decoder or None, metadata, the run's config or {}) of a .ckpt, run folder or export
    folder, without the pairing check. ``stages``: the stages accepted (None: any); the decoder
    is built for stage align. Shared by `dualmind eval` and the visualiser (which takes cores of
    every stage)."""
    from dualmind.checkpoint.export_hf_load import is_hf_export

    path = Path(checkpoint)
    if path.is_dir() and is_hf_export(path):  # `dualmind export --format hf`
        return _load_hf_export(path, stages)
    if path.is_dir() and (path / "config.json").is_file():  # a `dualmind export` folder
        return _load_export(path, stages)
    return _load_checkpoint(path, stages)


def _load_checkpoint(path: Path, stages: tuple[str, ...] | None
                     ) -> tuple[torch.nn.Module, torch.nn.Module | None, dict, dict]:
    from dualmind.checkpoint.meta import checkpoint_metadata, context_of
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    given = path
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise EvalError(f"{given}: no checkpoint (pass a .ckpt, a run folder or an export folder)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        meta = checkpoint_metadata(ckpt)
    except Exception as err:  # noqa: BLE001 - reported with the path
        raise EvalError(f"{path}: not a readable dualmind checkpoint ({err})") from err
    state = ckpt["state_dict"]

    def part(prefix: str) -> dict:
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    core = HyperCore(CoreConfig.from_dict(meta["model"], source=f"{path} metadata"))
    _load_state(core, part("core."), path, "core")
    decoder = _build_decoder(meta, path, lambda: part("decoder."), stages)
    meta["path"] = str(path)
    meta["global_step"] = ckpt.get("global_step")
    cfg = (ckpt.get("hyper_parameters") or {}).get("cfg")
    meta["context"] = context_of(meta, ckpt)
    return core.eval(), decoder, meta, dict(cfg or {})


def _load_export(path: Path, stages: tuple[str, ...] | None
                 ) -> tuple[torch.nn.Module, torch.nn.Module | None, dict, dict]:
    from dualmind.checkpoint.export import ExportError, load_component_state, load_core

    try:
        core, meta = load_core(path)
    except (ExportError, RuntimeError) as err:
        raise EvalError(f"{path}: {err}") from err
    if meta.get("stage") == "align" and "decoder" not in meta.get("components", {}):
        raise EvalError(f"{path}: an align export without its decoder (re-export it)")
    decoder = _build_decoder(meta, path / "config.json",
                             lambda: load_component_state(path, "decoder"), stages)
    return core.eval(), decoder, dict(meta, path=str(path)), {}


def _load_hf_export(path: Path, stages: tuple[str, ...] | None
                    ) -> tuple[torch.nn.Module, torch.nn.Module | None, dict, dict]:
    """The core (a Llama folder) and, for stage align, the decoder in its decoder/ folder; the
    metadata from dualmind.json, the decoder's config from decoder/config.json."""
    from dualmind.checkpoint.export import ExportError
    from dualmind.checkpoint.export_hf_load import load_hf_core, load_hf_decoder

    try:
        core, marker = load_hf_core(path)
        stage = marker.get("stage")
        _check_stage(stage, stages, path)
        meta = dict(marker, path=str(path))
        if stage != "align":
            return core.eval(), None, meta, {}
        if not marker.get("decoder"):
            raise EvalError(f"{path}: an align export without its decoder folder (re-export it)")
        decoder, config = load_hf_decoder(path / marker["decoder"])
    except ExportError as err:
        raise EvalError(f"{path}: {err}") from err
    meta["decoder"] = config.get("decoder")  # the decoder's config, as a checkpoint records it
    return core.eval(), decoder.eval(), meta, {}


def _check_stage(stage, stages: tuple[str, ...] | None, source) -> None:
    if stages is not None and stage not in stages:
        wanted = ("`dualmind eval` scores a decoder (stage align) or a BPE baseline (stage lm)"
                  if stages == EVAL_STAGES else
                  "expected stage " + " or ".join(repr(s) for s in stages))
        raise EvalError(f"{source}: a checkpoint of stage {stage!r}; {wanted}")


def _build_decoder(meta: dict, source: Path, state, stages: tuple[str, ...] | None
                   ) -> torch.nn.Module | None:
    """The decoder of an align checkpoint (None for the other stages); a stage outside
    ``stages`` is refused."""
    stage = meta.get("stage")
    _check_stage(stage, stages, source)
    if stage != "align":
        return None
    from dualmind.model.decoder import LanguageDecoder
    from dualmind.model.decoder_config import DecoderConfig

    if not meta.get("decoder"):
        raise EvalError(f"{source}: an align checkpoint without its decoder config")
    decoder = LanguageDecoder(DecoderConfig.from_dict(meta["decoder"], source=f"{source}"))
    _load_state(decoder, state(), source, "decoder")
    return decoder.eval()


def _load_state(module: torch.nn.Module, state: dict, source: Path, what: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise EvalError(f"{source}: the {what} weights do not fit the {what} shape its metadata "
                        f"records: {str(err)[:300]}") from err


def _swap_core(core: torch.nn.Module, source: str | Path, meta: dict) -> torch.nn.Module:
    """Load another core's weights into the decoder's core shape (refusing another lexicon)."""
    from dualmind.checkpoint.frozen_core import CoreCheckpointError, core_state_from

    try:
        state, _ = core_state_from(source, meta.get("lexicon_fingerprint"))
        core.load_state_dict(state, strict=True)
    except CoreCheckpointError as err:
        raise EvalError(f"{meta['path']}: its decoder cannot read core {source}: {err}") from err
    except RuntimeError as err:
        raise EvalError(f"{meta['path']}: core {source} has another shape than the core the "
                        f"decoder was aligned to ({meta.get('model')}): {str(err)[:300]}") from err
    return core.eval()


def _check_pairing(core: torch.nn.Module, meta: dict, source: str) -> None:
    from dualmind.checkpoint.frozen_core import (
        CorePairingError,
        check_core_pairing,
        core_fingerprint,
    )

    expected = meta.get("core_fingerprint")
    if expected is None:  # checkpoints written before fingerprints were recorded
        warnings.warn(f"{meta['path']}: records no core_fingerprint (made before decoders "
                      "recorded their core); the decoder/core pairing is not verified",
                      stacklevel=3)
        return
    try:
        check_core_pairing(expected, core_fingerprint(core), where=meta["path"], core=source)
    except CorePairingError as err:
        raise EvalError(str(err)) from err
