"""Finding and checking the pieces of a bridge: lexicon, core, decoder, text tokenizer, adapter.

They belong together only if
  * the checkpoint's ``lexicon_fingerprint`` is the lexicon's fingerprint (the core only knows
    the symbols of its own lexicon);
  * the checkpoint's ``core_fingerprint`` (the frozen core the decoder was aligned to) is the
    fingerprint of the core weights loaded. Checkpoints made before it was recorded have none:
    then a warning says so and loading continues, since nothing can be proved either way;
  * an adapter was trained on this core (``dualmind.adapters.lora.load_adapter`` checks it).
A mismatch is a :class:`BridgeError` naming both fingerprints.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

from dualmind.bridge.errors import BridgeError
from dualmind.data.text_tokenizer import TOKENIZER_FILE


def load_lexicon(lexicon_dir: str | Path):
    from dualmind.lexicon.lexicon import Lexicon
    from dualmind.lexicon.units import LexiconError

    try:
        return Lexicon.load(lexicon_dir)
    except LexiconError as err:
        raise BridgeError(f"lexicon {lexicon_dir}: {err}") from err


def load_core_and_decoder(source: str | Path):
    """(core, decoder, meta) of an align checkpoint, its run folder, or an export folder."""
    from dualmind.evaluate.load import load_models
    from dualmind.evaluate.report import EvalError

    try:
        core, decoder, meta = load_models(source)
    except (EvalError, ValueError, RuntimeError, OSError) as err:
        raise BridgeError(f"{source}: cannot load a core and decoder ({err})") from err
    if decoder is None:
        raise BridgeError(f"{source}: stage {meta.get('stage')!r} has no language decoder; the "
                          "bridge needs an align checkpoint (recipe=decoder_align)")
    return core.eval(), decoder.eval(), meta


def core_fingerprint(core) -> str:
    from dualmind.model.fingerprint import weights_fingerprint

    return weights_fingerprint(core.state_dict())


def check_lexicon(lexicon, meta: dict, source) -> None:
    recorded = meta.get("lexicon_fingerprint")
    if recorded is None:
        warnings.warn(f"{source}: records no lexicon fingerprint; cannot check that lexicon "
                      f"{lexicon.fingerprint[:16]} is the core's", stacklevel=3)
    elif recorded != lexicon.fingerprint:
        raise BridgeError(f"lexicon mismatch: {source} was trained with lexicon "
                          f"{recorded[:16]}, but the lexicon given has fingerprint "
                          f"{lexicon.fingerprint[:16]}; a core only understands its own "
                          "lexicon's symbols")


def check_core(fingerprint: str, meta: dict, source) -> list[str]:
    """Raise on a decoder aligned to another core; return a note when nothing is recorded."""
    recorded = meta.get("core_fingerprint")
    if recorded is None:
        note = (f"{source} records no core_fingerprint (made before fingerprints were "
                f"recorded): cannot prove the decoder was aligned to this core "
                f"({fingerprint}); continuing")
        warnings.warn(note, stacklevel=3)
        return [note]
    if recorded != fingerprint:
        raise BridgeError(f"core mismatch: the decoder in {source} was aligned to core "
                          f"{recorded}, but the core loaded has fingerprint {fingerprint}")
    return []


def find_tokenizer(source: str | Path, meta: dict, given: str | Path | None = None) -> Path:
    """The decoder's tokenizer.json: given, beside an export, or in the training corpus folder
    recorded in the checkpoint's hyperparameters (data.dir)."""
    if given is not None:
        path = Path(given)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise BridgeError(f"{given}: no {TOKENIZER_FILE} there")
        return path
    from dualmind.checkpoint.meta import recorded_corpus_dir
    from dualmind.data.text_tokenizer import find_text_tokenizer

    where = Path(meta.get("path", source))
    path, why = find_text_tokenizer(where, recorded_corpus_dir(where, meta))
    if path is None:
        raise BridgeError(f"{source}: cannot find the decoder's {TOKENIZER_FILE}: {why}; "
                          "pass tokenizer=PATH")
    return path


def load_tokenizer(path: Path, decoder) -> tuple[object, int, int]:
    """(tokenizer, bos id, eos id); refuses a tokenizer larger than the decoder's vocabulary."""
    from dualmind.data.text_tokenizer import SPECIAL_TOKENS, load_text_tokenizer

    try:
        tok = load_text_tokenizer(path)
    except Exception as err:  # noqa: BLE001 - tokenizers raises its own exception types
        raise BridgeError(f"{path}: not a tokenizer file ({err})") from err
    if tok.get_vocab_size() > decoder.cfg.vocab_size:
        raise BridgeError(f"{path}: {tok.get_vocab_size()} tokens, more than the decoder's "
                          f"vocabulary ({decoder.cfg.vocab_size}): not this decoder's tokenizer")
    bos, eos = tok.token_to_id(SPECIAL_TOKENS[1]), tok.token_to_id(SPECIAL_TOKENS[2])
    if bos is None or eos is None:
        raise BridgeError(f"{path}: no {SPECIAL_TOKENS[1]} / {SPECIAL_TOKENS[2]} tokens")
    return tok, int(bos), int(eos)


def apply_adapter(core, adapter_dir: str | Path):
    """The core with the adapter in ``adapter_dir`` applied (helper package dualmind.adapters)."""
    path = Path(adapter_dir)
    if not path.is_dir():
        raise BridgeError(f"adapter {adapter_dir}: no such folder")
    try:
        from dualmind.adapters.lora import load_adapter
    except ImportError as err:
        raise BridgeError(f"adapter {adapter_dir}: dualmind.adapters (load_adapter) is not "
                          f"available in this installation ({err}); load without the adapter"
                          ) from err
    try:
        return load_adapter(core, path).eval()
    except BridgeError:
        raise
    except Exception as err:  # AdapterError (names both fingerprints), PEFT errors, bad files
        raise BridgeError(f"adapter {adapter_dir}: {err}") from err


# ---- writing a bridge folder's model/ (a `dualmind export` folder written from memory) ------


def write_export(out: Path, core, decoder, lexicon_fingerprint: str, core_fp: str,
                 meta: dict) -> Path:
    """OUT/config.json + core.safetensors + decoder.safetensors, readable by load_models."""
    from safetensors.torch import save_file

    import dualmind
    from dualmind.checkpoint.export import EXPORT_FORMAT, EXPORT_VERSION, unique_tensors

    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, model in (("core", core), ("decoder", decoder)):
        unique, aliases = unique_tensors(model.state_dict())
        save_file(unique, str(out / f"{name}.safetensors"),
                  metadata={"aliases": json.dumps(aliases)})
        files[name] = {"file": f"{name}.safetensors", "tensors": len(unique), "aliases": aliases}
    config = {
        "format": EXPORT_FORMAT, "format_version": EXPORT_VERSION,
        "dualmind_version": dualmind.__version__, "stage": "align",
        "lexicon_fingerprint": lexicon_fingerprint, "core_fingerprint": core_fp,
        "model": core.cfg.to_dict(), "decoder": decoder.cfg.to_dict(), "components": files,
        "global_step": meta.get("global_step"), "flops_total": meta.get("flops_total"),
        "source_checkpoint": meta.get("path"),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return out


def copy_folder(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
