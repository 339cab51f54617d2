"""Reading a `dualmind export --format hf` folder back into dualmind's own classes.

    from dualmind.checkpoint.export_hf_load import load_hf_core, load_hf_decoder
    core, marker = load_hf_core("runs/core_mini/hf", expect_lexicon=lexicon.fingerprint)
    decoder, config = load_hf_decoder("runs/core_mini/hf/decoder")

``load_hf_core`` also reads a plain Llama folder (no ``dualmind.json``): its config.json alone then
gives the core's shape. With ``dualmind.json`` the exact core config recorded there is used
(init, attention backend, the NTK rope form), after checking that it describes the same numbers
as config.json: a config.json edited by hand is refused, naming the key. The weights come back
bit for bit: safetensors stores them as written, and only names change.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dualmind.checkpoint.export import ExportError
from dualmind.checkpoint.export_hf import DECODER_FORMAT, HF_FORMAT, HF_VERSION, MARKER_FILE
from dualmind.checkpoint.export_stream import INDEX_FILE, SINGLE_FILE

# CoreConfig fields that config.json also holds: they must agree with dualmind.json's
SHAPE_KEYS = ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "head_dim",
              "norm_eps", "max_seq_len", "tie_embeddings")


def is_hf_export(folder: str | Path) -> bool:
    return (Path(folder) / MARKER_FILE).is_file() and (Path(folder) / "config.json").is_file()


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise ExportError(f"{path}: missing")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExportError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(value, dict):
        raise ExportError(f"{path}: expected a JSON object")
    return value


def read_marker(folder: Path) -> dict:
    path = folder / MARKER_FILE
    marker = read_json(path)
    if marker.get("format") != HF_FORMAT:
        raise ExportError(f"{path}: key 'format' is {marker.get('format')!r}, not {HF_FORMAT!r}")
    if not isinstance(marker.get("format_version"), int) or marker["format_version"] > HF_VERSION:
        raise ExportError(f"{path}: key 'format_version' is {marker.get('format_version')!r}; "
                          f"this dualmind reads up to {HF_VERSION}")
    return marker


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of ``model.safetensors`` or of the shards its index names."""
    from safetensors.torch import load_file

    index = folder / INDEX_FILE
    if index.is_file():
        weight_map = read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ExportError(f"{index}: key 'weight_map' is missing or empty")
        files = sorted(set(weight_map.values()))
    elif (folder / SINGLE_FILE).is_file():
        files, weight_map = [SINGLE_FILE], None
    else:
        raise ExportError(f"{folder}: no {SINGLE_FILE} and no {INDEX_FILE}")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        if not (folder / name).is_file():
            raise ExportError(f"{index}: names {name}, which is not in {folder}")
        part = load_file(str(folder / name))
        if weight_map is not None:
            stray = sorted(k for k in part if weight_map.get(k) != name)
            if stray:
                raise ExportError(f"{folder / name}: holds {stray[:4]}, which {index} places "
                                  "elsewhere or not at all")
        state.update(part)
    if weight_map is not None and set(weight_map) - set(state):
        raise ExportError(f"{index}: names tensors no shard holds: "
                          f"{sorted(set(weight_map) - set(state))[:4]}")
    return state


def core_config_of(folder: Path, marker: dict | None):
    """The CoreConfig of an HF folder: dualmind.json's (checked against config.json), or
    config.json's alone for a plain Llama folder."""
    from dualmind.model.config import ConfigError, CoreConfig
    from dualmind.model.llama_format import core_config_from_hf
    from dualmind.model.rope import inverse_frequencies

    config_path = folder / "config.json"
    try:
        from_hf = core_config_from_hf(read_json(config_path))
    except (ValueError, TypeError) as err:  # unsupported rope, biases, missing keys
        raise ExportError(f"{config_path}: {err}") from err
    if marker is None:
        return from_hf
    try:
        cfg = CoreConfig.from_dict(marker.get("model") or {}, source=f"{folder / MARKER_FILE}")
    except ConfigError as err:
        raise ExportError(str(err)) from err
    for key in SHAPE_KEYS:
        if getattr(cfg, key) != getattr(from_hf, key):
            raise ExportError(f"{config_path}: gives {key}={getattr(from_hf, key)!r}, but "
                              f"{MARKER_FILE} records {getattr(cfg, key)!r} (edited by hand?)")
    ours = inverse_frequencies(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
    theirs = inverse_frequencies(from_hf.head_dim, from_hf.rope_theta, from_hf.rope_scaling)
    if not torch.equal(ours, theirs):
        raise ExportError(f"{config_path}: its RoPE (rope_theta, rope_scaling) gives other "
                          f"frequencies than the core config in {MARKER_FILE} (edited by hand?)")
    return cfg


def load_hf_core(folder: str | Path, expect_lexicon: str | None = None, device: str = "cpu"):
    """The HyperCore of an HF folder; returns (core, dualmind.json's dict or {} for a plain
    Llama folder). ``expect_lexicon``: refuse a core trained with another lexicon."""
    from dualmind.checkpoint.meta import LexiconMismatchError, check_lexicon
    from dualmind.model.core import HyperCore
    from dualmind.model.llama_format import from_hf_state_dict

    folder = Path(folder)
    marker = read_marker(folder) if (folder / MARKER_FILE).is_file() else None
    try:
        check_lexicon(marker or {}, expect_lexicon, where=f"export {folder}")
    except LexiconMismatchError as err:
        raise ExportError(str(err)) from err
    cfg = core_config_of(folder, marker)
    try:
        state = from_hf_state_dict(read_weights(folder), cfg)
    except (KeyError, ValueError) as err:
        raise ExportError(f"{folder}: {err}") from err
    with torch.device("meta"):  # no random init of weights that are replaced at once
        core = HyperCore(cfg)
    _load(core, state, folder)
    if cfg.tie_embeddings:
        core.output.weight = core.tok_embeddings.weight  # assign=True set them one by one
    return core.to(device).eval(), marker or {}


def load_hf_decoder(folder: str | Path, device: str = "cpu"):
    """The LanguageDecoder of an export's ``decoder/`` folder; returns (decoder, its config)."""
    from dualmind.model.config import ConfigError
    from dualmind.model.decoder import LanguageDecoder
    from dualmind.model.decoder_config import DecoderConfig

    folder = Path(folder)
    path = folder / "config.json"
    config = read_json(path)
    if config.get("format") != DECODER_FORMAT:
        raise ExportError(f"{path}: key 'format' is {config.get('format')!r}, "
                          f"not {DECODER_FORMAT!r}")
    if not isinstance(config.get("format_version"), int) or config["format_version"] > HF_VERSION:
        raise ExportError(f"{path}: key 'format_version' is {config.get('format_version')!r}; "
                          f"this dualmind reads up to {HF_VERSION}")
    try:
        cfg = DecoderConfig.from_dict(config.get("decoder") or {}, source=path)
    except ConfigError as err:
        raise ExportError(str(err)) from err
    state = read_weights(folder)
    aliases = config.get("aliases") or {}
    for alias, key in aliases.items():
        if key not in state:
            raise ExportError(f"{path}: alias {alias!r} -> {key!r}, which no weight file holds")
        state[alias] = state[key]
    with torch.device("meta"):
        decoder = LanguageDecoder(cfg)
    _load(decoder, state, folder)
    for alias, key in aliases.items():  # re-tie: assign=True replaced the shared parameter
        _set_parameter(decoder, alias, _get_parameter(decoder, key))
    return decoder.to(device).eval(), config


def _load(module: torch.nn.Module, state: dict, folder: Path) -> None:
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise ExportError(f"{folder}: the weights do not fit the shape its config records: "
                          f"{str(err)[:300]}") from err
    meta = [n for n, t in [*module.named_parameters(), *module.named_buffers()]
            if t.device.type == "meta"]
    if meta:  # a buffer built on meta that no weight file fills (none today): say so, not NaNs
        raise ExportError(f"{folder}: nothing to fill {meta[:4]} with")


def _get_parameter(module: torch.nn.Module, name: str) -> torch.nn.Parameter:
    return module.get_parameter(name)


def _set_parameter(module: torch.nn.Module, name: str, value: torch.nn.Parameter) -> None:
    owner, _, leaf = name.rpartition(".")
    setattr(module.get_submodule(owner) if owner else module, leaf, value)
