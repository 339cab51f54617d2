"""Retrieval: scenes embedded by the core's pooled states, searched with FAISS.

Embedding of a scene: the core reads its symbols alone (no other context), the states of one
layer are L2-normalised per position (final-norm states as they are), averaged over the scene's
units and L2-normalised again, so an inner product is a cosine similarity (FAISS
``IndexFlatIP``: exact search). A question is embedded the same way. By default the layer is 0,
the symbol embeddings (a bag of symbols); ``layer=k`` pools the residual stream after block k,
``layer=None`` the final-norm states (what the decoder reads). On the demo corpus (8 planted
facts among 400 scenes) layer 0 found every fact on semantic cores of 300, 600 and 1,200 steps,
the final states 50-75% of them: a young core's final states are nearly one vector at every
position (RESULTS.md, index_pooling).

An index folder holds
  index.faiss    the FAISS index (one row per scene, in order)
  scenes.json    format, version, the core's and the lexicon's fingerprints, dim, and per scene
                 its key (split:record), document, language, kind and text
  units.npy      every scene's symbols back to back (int32), units_offsets.npy the row starts
An index embeds with one core: loading it for another core is refused (core_fingerprint).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dualmind.bridge.errors import BridgeError

INDEX_FORMAT = "dualmind-scene-index"
INDEX_VERSION = 1


@dataclass
class SceneRecord:
    key: str
    units: list[int]
    text: str
    doc: int = -1
    lang: str = ""
    kind: str = "scene"


@dataclass
class Hit:
    rank: int
    score: float
    key: str
    text: str
    units: list[int]


# The states an index pools unless told otherwise: 0, the symbol embeddings (module docstring).
POOLED_LAYER: int | None = 0


@torch.no_grad()
def pooled_states(core, sequences: list[list[int]], batch_size: int = 16,
                  layer: int | None = POOLED_LAYER) -> np.ndarray:
    """[N, D] float32: mean of the core's states over each sequence, L2-normalised.

    layer None: the final-norm hidden states (what the decoder reads). layer k: the residual
    stream after block k (0 = the symbol embeddings), each position L2-normalised before the
    mean (raw residual streams carry a few huge dimensions that would otherwise dominate).
    Sequences are batched by length and right-padded; attention is causal, so padding after a
    sequence changes none of its states, and the mean takes only its own positions. A sequence
    longer than the core's context is cut to its first max_seq_len symbols."""
    if layer is not None and not 0 <= layer <= core.cfg.n_layers:
        raise BridgeError(f"layer must be in [0, {core.cfg.n_layers}] (0 = embeddings) or None "
                          f"(final-norm states), got {layer}")
    limit = core.cfg.max_seq_len
    device = core.tok_embeddings.weight.device
    out = np.zeros((len(sequences), core.cfg.dim), dtype=np.float32)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        seqs = [list(sequences[i][:limit]) for i in rows]
        if any(len(s) == 0 for s in seqs):
            raise BridgeError("cannot embed an empty symbol sequence")
        width = max(len(s) for s in seqs)
        ids = torch.zeros(len(seqs), width, dtype=torch.int64)
        real = torch.zeros(len(seqs), width, 1)
        for b, s in enumerate(seqs):
            ids[b, :len(s)] = torch.tensor(s)
            real[b, :len(s)] = 1.0
        res = core(ids.to(device), compute_logits=False, return_hidden_states=layer is not None)
        if layer is None:
            hidden = res.hidden.float().cpu()
        else:
            hidden = torch.nn.functional.normalize(res.hidden_states[layer].float().cpu(), dim=-1)
        mean = (hidden * real).sum(dim=1) / real.sum(dim=1)
        out[rows] = torch.nn.functional.normalize(mean, dim=-1).numpy()
    return out


class SceneIndex:
    def __init__(self, index, records: list[SceneRecord], core_fingerprint: str,
                 lexicon_fingerprint: str | None, dim: int, layer: int | None = None):
        self.index, self.records = index, records
        self.core_fingerprint, self.lexicon_fingerprint, self.dim = (
            core_fingerprint, lexicon_fingerprint, dim)
        self.layer = layer  # which states are pooled (see pooled_states); questions use the same

    def __len__(self) -> int:
        return len(self.records)

    @classmethod
    def build(cls, core, records: list[SceneRecord], core_fingerprint: str,
              lexicon_fingerprint: str | None = None, batch_size: int = 16,
              progress=None, layer: int | None = POOLED_LAYER) -> SceneIndex:
        import faiss

        if not records:
            raise BridgeError("no scenes to index")
        index = faiss.IndexFlatIP(core.cfg.dim)
        for start in range(0, len(records), 256):  # chunks, so progress can be shown
            chunk = records[start:start + 256]
            index.add(pooled_states(core, [r.units for r in chunk], batch_size, layer))
            if progress is not None:
                progress(len(chunk))
        return cls(index, records, core_fingerprint, lexicon_fingerprint, core.cfg.dim, layer)

    def search(self, core, question: list[int], k: int) -> list[Hit]:
        """The k nearest scenes to ``question`` (symbols), nearest first."""
        if not question:
            raise BridgeError("cannot search with an empty question")
        query = pooled_states(core, [question], layer=self.layer)
        k = min(k, len(self.records))
        scores, rows = self.index.search(query, k)
        return [Hit(rank, float(s), self.records[r].key, self.records[r].text,
                    list(self.records[r].units))
                for rank, (s, r) in enumerate(zip(scores[0], rows[0], strict=True)) if r >= 0]

    def check_core(self, core_fingerprint: str) -> None:
        if core_fingerprint != self.core_fingerprint:
            raise BridgeError(f"the index was embedded with core {self.core_fingerprint}, the "
                              f"bridge's core is {core_fingerprint}: rebuild the index "
                              "(dualmind index build)")

    # ---- storage ----

    def save(self, directory: str | Path) -> Path:
        import faiss

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(d / "index.faiss"))
        lengths = np.array([len(r.units) for r in self.records], dtype=np.int64)
        np.save(d / "units.npy", np.concatenate([np.asarray(r.units, dtype=np.int32)
                                                 for r in self.records]))
        np.save(d / "units_offsets.npy", np.concatenate([[0], np.cumsum(lengths)]))
        meta = {"format": INDEX_FORMAT, "format_version": INDEX_VERSION,
                "core_fingerprint": self.core_fingerprint,
                "lexicon_fingerprint": self.lexicon_fingerprint, "dim": self.dim,
                "layer": self.layer,
                "pooling": ("mean of final-norm hidden states over units, L2-normalised"
                            if self.layer is None else
                            f"mean of L2-normalised residual states after block {self.layer} "
                            "(0 = embeddings) over units, L2-normalised"),
                "scenes": [{"key": r.key, "doc": r.doc, "lang": r.lang, "kind": r.kind,
                            "text": r.text} for r in self.records]}
        (d / "scenes.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n",
                                       encoding="utf-8")
        return d

    @classmethod
    def load(cls, directory: str | Path) -> SceneIndex:
        import faiss

        d = Path(directory)
        meta_path = d / "scenes.json"
        for p in (meta_path, d / "index.faiss", d / "units.npy", d / "units_offsets.npy"):
            if not p.is_file():
                raise BridgeError(f"{p}: missing (not an index folder? build one with "
                                  "`dualmind index build`)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != INDEX_FORMAT or meta.get("format_version", 0) > INDEX_VERSION:
            raise BridgeError(f"{meta_path}: format {meta.get('format')!r} version "
                              f"{meta.get('format_version')!r} is not one this dualmind reads")
        index = faiss.read_index(str(d / "index.faiss"))
        units = np.load(d / "units.npy")
        offsets = np.load(d / "units_offsets.npy")
        scenes = meta["scenes"]
        if index.ntotal != len(scenes) or len(offsets) != len(scenes) + 1:
            raise BridgeError(f"{d}: index.faiss has {index.ntotal} rows, scenes.json "
                              f"{len(scenes)} scenes, units_offsets.npy {len(offsets) - 1}: "
                              "the files do not belong together (rebuild the index)")
        records = [SceneRecord(s["key"], units[offsets[i]:offsets[i + 1]].tolist(), s["text"],
                               s.get("doc", -1), s.get("lang", ""), s.get("kind", "scene"))
                   for i, s in enumerate(scenes)]
        return cls(index, records, meta["core_fingerprint"], meta.get("lexicon_fingerprint"),
                   int(meta["dim"]), meta.get("layer"))


def corpus_records(corpus_dir: str | Path, splits: tuple[str, ...] = ("train", "val"),
                   kinds: tuple[str, ...] = ("scene",), limit: int | None = None
                   ) -> tuple[list[SceneRecord], str]:
    """(records, lexicon fingerprint) of a corpus folder's shards: each record's symbols and its
    text (the decoder tokens decoded back; byte-level BPE round-trips exactly)."""
    from dualmind.data.shards import ShardError, ShardSet
    from dualmind.data.text_tokenizer import load_text_tokenizer

    records: list[SceneRecord] = []
    fingerprint = None
    for split in splits:
        try:
            shards = ShardSet.open(Path(corpus_dir), split=split)
        except ShardError as err:
            raise BridgeError(f"corpus {corpus_dir} [{split}]: {err}") from err
        fingerprint = shards.lexicon_fingerprint
        tok = load_text_tokenizer(shards.tokenizer_path)
        for i in range(len(shards)):
            scene = shards[i]
            if scene.kind not in kinds or len(scene.core) == 0:
                continue
            records.append(SceneRecord(f"{split}:{i}", [int(u) for u in scene.core],
                                       tok.decode([int(t) for t in scene.text]), int(scene.doc),
                                       scene.lang, scene.kind))
            if limit is not None and len(records) >= limit:
                return records, fingerprint
    return records, fingerprint
