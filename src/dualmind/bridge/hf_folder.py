"""A bridge from a `dualmind export --format hf` folder: the core as a Llama folder, the decoder in
``decoder/``, the lexicon in ``lexicon/`` (layout: docs/export.md).

The same checks as a bridge folder's: the lexicon is the core's, and the decoder was aligned to
exactly the core weights loaded (its ``core_fingerprint``), each refusal naming both.
"""

from __future__ import annotations

from pathlib import Path

from dualmind.bridge import loading
from dualmind.bridge.errors import BridgeError


def is_hf_bridge(folder: Path) -> bool:
    from dualmind.checkpoint.export_hf_load import is_hf_export

    return is_hf_export(folder)


def load_hf_bridge(folder: Path) -> dict:
    """The keyword arguments of ``Bridge(...)`` for an HF export folder of an align checkpoint."""
    from dualmind.checkpoint.export import ExportError
    from dualmind.checkpoint.export_hf import DECODER_DIR, LEXICON_DIR
    from dualmind.checkpoint.export_hf_load import load_hf_core, load_hf_decoder

    lexicon = loading.load_lexicon(folder / LEXICON_DIR)
    try:
        core, marker = load_hf_core(folder)
        if not marker.get("decoder"):
            raise BridgeError(f"{folder}: an export of stage {marker.get('stage')!r}, without a "
                              f"language decoder ({DECODER_DIR}/); the bridge needs the export "
                              "of an align checkpoint (recipe=decoder_align)")
        decoder, decoder_config = load_hf_decoder(folder / marker["decoder"])
    except ExportError as err:
        raise BridgeError(str(err)) from err
    loading.check_lexicon(lexicon, marker, folder)
    decoder_dir = folder / marker["decoder"]
    fingerprint = loading.core_fingerprint(core)
    notes = loading.check_core(fingerprint, decoder_config, decoder_dir)
    tokenizer_path = decoder_dir / loading.TOKENIZER_FILE
    tokenizer, bos, eos = loading.load_tokenizer(tokenizer_path, decoder)
    return dict(lexicon=lexicon, core=core, decoder=decoder, tokenizer=tokenizer, bos=bos,
                eos=eos, notes=notes, core_fp=fingerprint, tokenizer_path=tokenizer_path,
                meta=dict(marker, path=str(folder)))
