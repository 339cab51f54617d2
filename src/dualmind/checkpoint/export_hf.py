"""`dualmind export --format hf`: the core as a Hugging Face Llama folder, the decoder beside it.

    dualmind export runs/core_mini --format hf --lexicon runs/lexicon --out runs/core_mini/hf

The core is a Llama in every respect transformers checks (pre-norm RMSNorm, half-split RoPE,
SwiGLU, grouped-query attention, no biases, tied or untied head: tests/test_core_llama_parity.py),
so its weights only change names. OUT holds

    config.json, generation_config.json   a LlamaForCausalLM config (written here, no transformers)
    model.safetensors                      or model-0000i-of-0000n.safetensors + its index
    tokenizer.json, tokenizer_config.json  hyperphrase symbol <-> core id (symbol_tokenizer)
    lexicon/                               the lexicon folder: text <-> symbols
    dualmind.json                          provenance: stage, fingerprints, the exact core config
    decoder/                               align checkpoints: config.json, model.safetensors,
                                           tokenizer.json (the decoder's text BPE)

so ``LlamaForCausalLM.from_pretrained(OUT)`` loads the core with no dualmind code, and
``Bridge.from_pretrained(OUT)`` loads core, decoder and lexicon (docs/export.md).

Tensors are written one at a time (dualmind.checkpoint.export_stream): from a .ckpt through a
memory map, from a sharded (DCP) folder with ``export_sharded.load_dcp_tensor``; a shard file
closes before it would pass ``max_shard_bytes``.
At most one whole tensor is resident, never the model. The folder is written under a staging
name and moved into place when complete. Weights keep the checkpoint's dtype (cast at load time:
``from_pretrained(dtype=torch.bfloat16)``): the decoder was aligned to these exact weights.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import torch

from dualmind.checkpoint.export import ExportError
from dualmind.checkpoint.export_stream import (
    CheckpointTensors,
    is_export_folder,
    resolve_source,
    write_weights,
)

HF_FORMAT = "dualmind-hf"
HF_VERSION = 1
MARKER_FILE = "dualmind.json"  # what tells a dualmind HF export from any Llama folder
DECODER_DIR = "decoder"
DECODER_FORMAT = "dualmind-decoder"
LEXICON_DIR = "lexicon"
DEFAULT_MAX_SHARD = 5 * 10**9  # transformers' save_pretrained default ("5GB")
# the exact inverse of the torch dtypes safetensors names (export_sharded.ST_DTYPES)
HF_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16",
                  torch.float16: "float16", torch.float64: "float64"}


# ---- the Llama config of a core ------------------------------------------------------------


def hf_llama_config(cfg, dtype: torch.dtype) -> dict:
    """config.json of ``LlamaForCausalLM`` with the numbers of CoreConfig ``cfg``.

    RoPE in the transformers 4.x layout (top-level rope_theta, ``rope_scaling``), which 5.x also
    reads. The core's static NTK scaling is a plain RoPE with a larger base, so it is written as
    one: the same base, the same float, the same inverse frequencies.
    """
    theta, scaling = cfg.rope_theta, cfg.rope_scaling
    rope = None
    if scaling is not None and scaling["type"] == "ntk":
        theta = theta * scaling["factor"] ** (cfg.head_dim / (cfg.head_dim - 2))  # as rope.py
    elif scaling is not None and scaling["type"] == "linear":
        rope = {"rope_type": "linear", "factor": scaling["factor"]}
    elif scaling is not None and scaling["type"] == "llama3":
        rope = {"rope_type": "llama3", "factor": scaling["factor"],
                "low_freq_factor": scaling["low_freq_factor"],
                "high_freq_factor": scaling["high_freq_factor"],
                "original_max_position_embeddings": scaling["original_max_seq_len"]}
    elif scaling is not None:
        raise ExportError(f"rope_scaling type {scaling['type']!r} has no Llama equivalent")
    from dualmind.checkpoint.symbol_tokenizer import BOS, EOS, PAD

    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.dim,
        "intermediate_size": cfg.ffn_dim, "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim, "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len, "rms_norm_eps": cfg.norm_eps,
        "rope_theta": theta, "rope_scaling": rope,
        "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_embeddings, "initializer_range": cfg.init_std,
        "bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD,
        "torch_dtype": HF_DTYPE_NAMES[dtype], "use_cache": True,
    }


def generation_config() -> dict:
    from dualmind.checkpoint.symbol_tokenizer import BOS, EOS, PAD

    # the core ends a record (a scene) with EOS; generation stops there, as the bridge's does
    return {"bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD}


# ---- the export ------------------------------------------------------------------------------


def _check_tensors(path: Path, what: str, specs: dict, expected: dict) -> None:
    """Refuse, before anything is written, tensors that are not the ones the config gives."""
    wrong = sorted(k for k in set(specs) & set(expected) if tuple(specs[k][0]) != expected[k])
    if set(specs) != set(expected) or wrong:
        raise ExportError(
            f"{path}: the {what}'s tensors do not fit the shape its metadata records: "
            f"missing {sorted(set(expected) - set(specs))[:4]}, unexpected "
            f"{sorted(set(specs) - set(expected))[:4]}, other shapes {wrong[:4]}")


def _decoder_entries(source: CheckpointTensors, meta: dict) -> tuple[list, dict[str, str]]:
    """(entries in name order, aliases) of an align checkpoint's decoder, checked."""
    from dualmind.model.config import ConfigError
    from dualmind.model.decoder import LanguageDecoder
    from dualmind.model.decoder_config import DecoderConfig

    try:
        cfg = DecoderConfig.from_dict(meta.get("decoder") or {}, source=f"{source.path} metadata")
    except ConfigError as err:
        raise ExportError(str(err)) from err
    with torch.device("meta"):
        expected = {k: v.shape for k, v in LanguageDecoder(cfg).state_dict().items()}
    specs = source.component("decoder.")
    from dualmind.model.boundary import OLD_START_BIAS

    if f"boundary.{OLD_START_BIAS}" in specs and "boundary.start_bias" not in specs:
        specs["boundary.start_bias"] = specs.pop(f"boundary.{OLD_START_BIAS}")  # _decoder_tensor
    aliases = {}
    if cfg.tie_embeddings:
        specs.pop("output.weight", None)
        expected.pop("output.weight")
        aliases = {"output.weight": "tok_embeddings.weight"}
    _check_tensors(source.path, "decoder", specs, expected)
    return [(name, *specs[name]) for name in sorted(specs)], aliases


def _core_entries(source: CheckpointTensors, cfg) -> tuple[list, dict[str, str]]:
    """(entries in HF names and layer order, HF name -> checkpoint name) of the core."""
    from dualmind.model.core import HyperCore
    from dualmind.model.llama_format import to_hf_state_dict

    specs = source.component("core.")
    with torch.device("meta"):  # the names and shapes this config has, without any memory
        expected = {k: v.shape for k, v in HyperCore(cfg).state_dict().items()}
    if cfg.tie_embeddings:
        specs.pop("output.weight", None)  # the embedding itself; transformers ties it on load
        expected.pop("output.weight")
    _check_tensors(source.path, "core", specs, expected)
    try:
        hf_of = to_hf_state_dict({name: name for name in specs}, cfg)  # HF name -> core name
    except ValueError as err:  # a core whose rows a Llama folder cannot hold (unit pieces)
        raise ExportError(str(err)) from err

    def order(hf_name: str) -> tuple[int, str]:
        m = re.match(r"model\.layers\.(\d+)\.", hf_name)
        top = {"model.embed_tokens.weight": -1, "model.norm.weight": 1 << 30}
        return (int(m.group(1)) if m else top.get(hf_name, 1 << 31), hf_name)

    entries = [(hf, *specs[core]) for hf, core in sorted(hf_of.items(), key=lambda x: order(x[0]))]
    return entries, {hf: f"core.{core}" for hf, core in hf_of.items()}


def export_hf(ckpt: str | Path, out: str | Path, lexicon_dir: str | Path,
              tokenizer: str | Path | None = None,
              max_shard_bytes: int = DEFAULT_MAX_SHARD) -> Path:
    """Write the HF folder OUT from a checkpoint (.ckpt, run folder or DCP folder) or a
    `dualmind export` folder (a merged adapter's, say); see the module docstring. ``tokenizer``:
    the decoder's tokenizer.json (align checkpoints; found beside the checkpoint or in its corpus
    folder when not given)."""
    from dualmind.checkpoint.atomic_save import remove_stale, replace_folder, staging_path
    from dualmind.model.config import ConfigError, CoreConfig

    ckpt, out = resolve_source(Path(ckpt)), Path(out)
    if max_shard_bytes <= 0:
        raise ExportError(f"max shard size must be positive, got {max_shard_bytes}")
    if out.exists() and not (out / MARKER_FILE).is_file() and any(out.iterdir()):
        raise ExportError(f"{out}: a non-empty folder that is no `dualmind export --format hf` "
                          "folder; not overwriting it")
    try:
        source = CheckpointTensors(ckpt)
    except ExportError:
        raise
    except Exception as err:  # noqa: BLE001 - torch/DCP read errors, reported with the path
        raise ExportError(f"{ckpt}: cannot read as a checkpoint without pickle ({err})") from err
    meta = source.meta
    lexicon = _checked_lexicon(lexicon_dir, meta, ckpt)
    try:
        cfg = CoreConfig.from_dict(meta.get("model") or {}, source=f"{ckpt} metadata")
    except ConfigError as err:
        raise ExportError(str(err)) from err
    if len(lexicon) > cfg.vocab_size:
        raise ExportError(f"lexicon {lexicon_dir} has {len(lexicon)} units, the core only "
                          f"{cfg.vocab_size} symbols: not this core's lexicon")
    entries, names = _core_entries(source, cfg)
    dtypes = {e[2] for e in entries}
    if len(dtypes) != 1 or next(iter(dtypes)) not in HF_DTYPE_NAMES:
        raise ExportError(f"{ckpt}: core tensors of dtypes {sorted(map(str, dtypes))}; a Llama "
                          "folder has one floating dtype")
    text_tokenizer = _decoder_tokenizer(ckpt, meta, tokenizer)
    decoder = _decoder_entries(source, meta) if text_tokenizer is not None else None

    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    staging = staging_path(out)
    staging.mkdir()
    try:
        files = write_weights(staging, entries, lambda n: source.get(names[n]), max_shard_bytes)
        _write_json(staging / "config.json", hf_llama_config(cfg, next(iter(dtypes))))
        _write_json(staging / "generation_config.json", generation_config())
        from dualmind.checkpoint.symbol_tokenizer import write_symbol_tokenizer

        write_symbol_tokenizer(staging, len(lexicon), cfg.max_seq_len)
        lexicon.save(staging / LEXICON_DIR)
        decoder_files = None
        if text_tokenizer is not None:
            decoder_files = _write_decoder(staging / DECODER_DIR, source, meta, text_tokenizer,
                                           decoder, max_shard_bytes)
        _write_json(staging / MARKER_FILE, _marker(ckpt, source, meta, files, decoder_files))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_folder(staging, out)
    return out


def _checked_lexicon(lexicon_dir, meta: dict, ckpt: Path):
    from dualmind.checkpoint.meta import LexiconMismatchError, check_lexicon
    from dualmind.lexicon.lexicon import Lexicon
    from dualmind.lexicon.units import LexiconError

    if lexicon_dir is None:
        raise ExportError("--format hf needs --lexicon DIR: the core's lexicon folder (its "
                          "symbols become the tokenizer's vocabulary and it ships in the export)")
    try:
        lexicon = Lexicon.load(lexicon_dir)
        check_lexicon(meta, lexicon.fingerprint, where=f"checkpoint {ckpt}")
    except LexiconError as err:
        raise ExportError(f"lexicon {lexicon_dir}: {err}") from err
    except LexiconMismatchError as err:
        raise ExportError(str(err)) from err
    return lexicon


def _decoder_tokenizer(ckpt: Path, meta: dict, given) -> Path | None:
    """The decoder's tokenizer.json of an align checkpoint (None for a core-only checkpoint);
    checked against the decoder's vocabulary before anything is written."""
    if meta.get("stage") != "align":
        if given is not None:
            raise ExportError(f"--tokenizer {given}: checkpoint {ckpt} is stage "
                              f"{meta.get('stage')!r}, which has no language decoder")
        return None
    from dualmind.checkpoint.meta import recorded_corpus_dir
    from dualmind.data.text_tokenizer import (
        TOKENIZER_FILE,
        find_text_tokenizer,
        load_text_tokenizer,
    )
    from dualmind.model.config import ConfigError
    from dualmind.model.decoder_config import DecoderConfig

    if not meta.get("decoder"):
        raise ExportError(f"{ckpt}: an align checkpoint without its decoder config")
    try:
        vocab = DecoderConfig.from_dict(meta["decoder"], source=f"{ckpt} metadata").vocab_size
    except ConfigError as err:
        raise ExportError(str(err)) from err
    if given is not None:
        path = Path(given) / TOKENIZER_FILE if Path(given).is_dir() else Path(given)
        if not path.is_file():
            raise ExportError(f"--tokenizer {given}: no {TOKENIZER_FILE} there")
    else:
        path, why = find_text_tokenizer(ckpt, recorded_corpus_dir(ckpt, meta))
        if path is None:
            raise ExportError(f"{why}; pass --tokenizer PATH")
    try:
        size = load_text_tokenizer(path).get_vocab_size()
    except Exception as err:  # noqa: BLE001 - tokenizers raises its own exception types
        raise ExportError(f"{path}: not a tokenizer file ({err})") from err
    if size > vocab:
        raise ExportError(f"{path}: {size} tokens, more than the decoder's vocabulary ({vocab}): "
                          "not this decoder's tokenizer")
    return path


def _decoder_tensor(source: CheckpointTensors, name: str) -> torch.Tensor:
    """A decoder tensor under today's name; a start bias stored before it had its gain is
    rescaled (the export then computes what the checkpoint did)."""
    from dualmind.model.boundary import OLD_START_BIAS, upgraded_start_bias

    if name == "boundary.start_bias" and f"decoder.{name}" not in source.specs:
        return upgraded_start_bias(source.get(f"decoder.boundary.{OLD_START_BIAS}"))
    return source.get(f"decoder.{name}")


def _write_decoder(folder: Path, source: CheckpointTensors, meta: dict, tokenizer: Path,
                   decoder: tuple[list, dict[str, str]], max_bytes: int) -> dict:
    """decoder/: config.json, the decoder's tensors under dualmind's names (a tied head stored
    once, named in config.json's aliases), tokenizer.json."""
    import dualmind

    folder.mkdir()
    entries, aliases = decoder
    files = write_weights(folder, entries, lambda n: _decoder_tensor(source, n), max_bytes)
    shutil.copyfile(tokenizer, folder / "tokenizer.json")
    _write_json(folder / "config.json", {
        "format": DECODER_FORMAT, "format_version": HF_VERSION,
        "dualmind_version": dualmind.__version__, "decoder": meta["decoder"],
        "core_fingerprint": meta.get("core_fingerprint"),
        "lexicon_fingerprint": meta.get("lexicon_fingerprint"),
        "aliases": aliases, "files": files,
    })
    return files


def _marker(ckpt: Path, source: CheckpointTensors, meta: dict, files: dict,
            decoder_files: dict | None) -> dict:
    import dualmind
    from dualmind.checkpoint.meta import context_of

    return {
        "format": HF_FORMAT, "format_version": HF_VERSION,
        "dualmind_version": dualmind.__version__, "stage": meta.get("stage"),
        "lexicon_fingerprint": meta.get("lexicon_fingerprint"),
        "core_fingerprint": meta.get("core_fingerprint"),
        "model": meta["model"],  # the exact core config (init, backend, rope kind) for dualmind
        "context": context_of(meta, source.checkpoint), "files": files,
        "decoder": DECODER_DIR if decoder_files is not None else None,
        "global_step": source.checkpoint.get("global_step"),
        "flops_total": meta.get("flops_total"), "source_checkpoint": str(ckpt),
    }


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# ---- command line (`dualmind export --format hf`, arguments in dualmind.checkpoint.export) ----


def parse_size(text: str) -> int:
    """"5GB", "500MB", "40KB" or a byte count (decimal units, as transformers reads them)."""
    m = re.fullmatch(r"\s*(\d+)\s*(B|KB|MB|GB|TB)?\s*", str(text).upper())
    if not m:
        raise ExportError(f"--max-shard-size {text!r}: expected e.g. 5GB, 500MB or a byte count")
    units = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
    return int(m.group(1)) * units[m.group(2)]


def run(args: argparse.Namespace) -> int:
    import sys

    try:
        ckpt = resolve_source(Path(args.checkpoint))
        out = (Path(args.out) if args.out else ckpt.with_name(f"{ckpt.name}-hf")
               if is_export_folder(ckpt) else ckpt.parent.parent / "export-hf")
        out = export_hf(ckpt, out, args.lexicon, tokenizer=args.tokenizer,
                        max_shard_bytes=parse_size(args.max_shard_size))
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    marker = json.loads((out / MARKER_FILE).read_text())
    shards = len(marker["files"])
    print(f"exported {ckpt} -> {out} as a Hugging Face Llama folder ({shards} weight "
          f"file{'s' if shards > 1 else ''}; stage {marker['stage']}, step "
          f"{marker['global_step']}, lexicon {marker['lexicon_fingerprint']}"
          f"{', decoder in decoder/' if marker['decoder'] else ''})")
    return 0
