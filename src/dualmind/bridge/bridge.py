"""``Bridge``: text -> hyperphrase -> the core thinks in symbols -> the decoder speaks.

    bridge = Bridge.from_checkpoints("runs/demo/lexicon-semantic",
                                     "runs/demo/decoder_align/checkpoints/last.ckpt")
    answer = bridge.generate("What is the night full of?", show_thought=True,
                             on_text=lambda s: print(s, end="", flush=True))
    bridge.save("runs/demo/bridge"); Bridge.from_pretrained("runs/demo/bridge")

A bridge folder holds ``lexicon/`` (the lexicon folder), ``model/`` (a ``dualmind export`` folder
with core and decoder), ``tokenizer.json`` (the decoder's), ``adapter/`` (optional) and
``bridge.json`` (the fingerprints that tie them together). See docs/bridge.md.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dualmind.bridge import loading
from dualmind.bridge.answer import Answer, Retrieved, Timings
from dualmind.bridge.errors import BridgeError
from dualmind.bridge.prompt import assemble, encode_prompt
from dualmind.bridge.rendering import render
from dualmind.bridge.sampling import check_options
from dualmind.bridge.thinking import think
from dualmind.data.text_tokenizer import TOKENIZER_FILE
from dualmind.model.core_reading import read_core
from dualmind.model.decoder_session import RECORD_END
from dualmind.model.pointer import pointer_for

BRIDGE_FORMAT = "dualmind-bridge"
BRIDGE_VERSION = 1
READS = ("turn", "thought", "context")


# Text tokens an answer may take per unit it renders, when the caller names no limit: the demo
# corpus' scenes take 2.7 BPE tokens per semantic unit and 1.3 per lossless one (its QA answers
# 3.3), so the rendering ends on its own EOS after the thought's last unit, not on the limit (a
# fixed 96 tokens cut the demo's English 32-symbol thoughts five symbols before their end).
TOKENS_PER_UNIT = 4
ANSWER_SLACK = 16


def answer_room(units: int) -> int:
    """The default ``max_tokens`` of an answer rendering ``units`` units."""
    return TOKENS_PER_UNIT * units + ANSWER_SLACK


class Bridge:
    def __init__(self, lexicon, core, decoder, tokenizer, bos: int = 1, eos: int = 2,
                 notes: list[str] | None = None, core_fp: str | None = None,
                 adapter_dir: str | Path | None = None, tokenizer_path: str | Path | None = None,
                 meta: dict | None = None):
        """Assemble from loaded pieces (use :meth:`from_checkpoints` / :meth:`from_pretrained`
        to load and check them). ``core`` may carry an adapter; ``core_fp`` is the fingerprint
        of the plain core under it."""
        if len(lexicon) > core.cfg.vocab_size:
            raise BridgeError(f"the lexicon has {len(lexicon)} units but the core only "
                              f"{core.cfg.vocab_size} symbols: not this core's lexicon")
        if decoder.cfg.core_dim != core.cfg.dim:
            raise BridgeError(f"the decoder reads states of width {decoder.cfg.core_dim}, the "
                              f"core's are {core.cfg.dim}: not this core's decoder")
        self.lexicon, self.core, self.decoder, self.tokenizer = lexicon, core, decoder, tokenizer
        self.bos, self.eos = bos, eos
        self.notes = list(notes or [])  # loading notices (e.g. no core fingerprint recorded)
        self.core_fingerprint = core_fp or loading.core_fingerprint(core)
        self.adapter_dir = Path(adapter_dir) if adapter_dir is not None else None
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else None
        self.meta = dict(meta or {})
        self.index = None  # a SceneIndex for retrieve=k (dualmind.bridge.retrieval)
        self._base_state = None  # plain core weights kept when an adapter is applied (save())

    # ---- loading ----

    @classmethod
    def from_checkpoints(cls, lexicon_dir: str | Path, align_checkpoint: str | Path,
                         adapter_dir: str | Path | None = None,
                         tokenizer: str | Path | None = None) -> Bridge:
        """Lexicon folder + align checkpoint (or its run folder, or an export folder) [+ adapter
        folder]. The decoder's tokenizer is found beside an export or in the training corpus
        folder the checkpoint records (or pass ``tokenizer``)."""
        lexicon = loading.load_lexicon(lexicon_dir)
        core, decoder, meta = loading.load_core_and_decoder(align_checkpoint)
        loading.check_lexicon(lexicon, meta, align_checkpoint)
        fp = loading.core_fingerprint(core)
        notes = loading.check_core(fp, meta, align_checkpoint)
        tok_path = loading.find_tokenizer(align_checkpoint, meta, tokenizer)
        tok, bos, eos = loading.load_tokenizer(tok_path, decoder)
        base_state = None
        if adapter_dir is not None:
            base_state = {k: v.detach().clone() for k, v in core.state_dict().items()}
            core = loading.apply_adapter(core, adapter_dir)
        bridge = cls(lexicon, core, decoder, tok, bos, eos, notes, fp, adapter_dir, tok_path, meta)
        bridge._base_state = base_state
        return bridge

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Bridge:
        """A folder written by :meth:`save`, or by `dualmind export --format hf` (an align
        checkpoint's: core as a Llama folder, decoder/, lexicon/)."""
        from dualmind.bridge.hf_folder import is_hf_bridge, load_hf_bridge

        d = Path(directory)
        if is_hf_bridge(d):
            return cls(**load_hf_bridge(d))
        spec_path = d / "bridge.json"
        if not spec_path.is_file():
            raise BridgeError(f"{d}: no bridge.json (not a folder written by Bridge.save or "
                              "`dualmind export --format hf`)")
        try:
            spec = json.loads(spec_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise BridgeError(f"{spec_path}: not valid JSON ({err})") from err
        if spec.get("format") != BRIDGE_FORMAT or spec.get("format_version", 0) > BRIDGE_VERSION:
            raise BridgeError(f"{spec_path}: format {spec.get('format')!r} version "
                              f"{spec.get('format_version')!r}; this dualmind reads "
                              f"{BRIDGE_FORMAT!r} up to version {BRIDGE_VERSION}")
        adapter = d / "adapter" if spec.get("adapter") else None
        bridge = cls.from_checkpoints(d / "lexicon", d / "model", adapter,
                                      tokenizer=d / TOKENIZER_FILE)
        if bridge.core_fingerprint != spec.get("core_fingerprint"):
            raise BridgeError(f"{spec_path}: key 'core_fingerprint' is "
                              f"{spec.get('core_fingerprint')}, but model/ holds core "
                              f"{bridge.core_fingerprint} (the folder was edited)")
        return bridge

    def save(self, directory: str | Path) -> Path:
        """Write lexicon/, model/, tokenizer.json, adapter/ (if any) and bridge.json."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.lexicon.save(d / "lexicon")
        core = self.core
        if self._base_state is not None:  # save the plain core; the adapter goes to adapter/
            from dualmind.model.core import HyperCore

            core = HyperCore(self.core.cfg)
            core.load_state_dict(self._base_state)
        loading.write_export(d / "model", core, self.decoder, self.lexicon.fingerprint,
                             self.core_fingerprint, self.meta)
        (d / TOKENIZER_FILE).write_text(self.tokenizer.to_str(), encoding="utf-8")
        if self.adapter_dir is not None and self.adapter_dir.resolve() != (d / "adapter").resolve():
            loading.copy_folder(self.adapter_dir, d / "adapter")
        spec = {"format": BRIDGE_FORMAT, "format_version": BRIDGE_VERSION,
                "lexicon_fingerprint": self.lexicon.fingerprint,
                "core_fingerprint": self.core_fingerprint,
                "adapter": self.adapter_dir is not None, "bos": self.bos, "eos": self.eos}
        (d / "bridge.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        return d

    # ---- generation ----

    @property
    def pointer_free(self) -> bool:
        """True for a decoder that reads every state alike (render mode, no rotary offsets)."""
        return not self.decoder.cfg.follows_pointer

    def gloss(self, ids: list[int]) -> str:
        return "·".join(self.lexicon.gloss(int(i)) for i in ids)

    def encode(self, prompt: str):
        """The prompt's symbols (EncodedPrompt: ids, unknown count, notes)."""
        return encode_prompt(self.lexicon, prompt, self.core.cfg.vocab_size)

    def generate(self, prompt: str, max_symbols: int = 32, temperature: float = 0.8,
                 top_k: int | None = 50, top_p: float | None = None, seed: int | None = None,
                 show_thought: bool = False, on_text: Callable[[str], None] | None = None,
                 *, max_tokens: int | None = None, read: str | None = None, retrieve: int = 0,
                 index=None,
                 history: list[list[int]] | None = None,
                 on_thought: Callable[[str], None] | None = None,
                 use_cache: bool = True, render_temperature: float | None = None) -> Answer:
        """Answer ``prompt``: the core continues it by up to ``max_symbols`` symbols, then the
        decoder renders up to ``max_tokens`` text tokens (default: room for every unit it
        reads, :func:`answer_room`), streamed through ``on_text``.

        read      which core states the decoder reads: "turn" (the question and the thought, the
                  default of a decoder reading in render mode: QA alignment renders answers
                  from question states, scene alignment renders a scene from its own and the
                  earlier scenes' states, and this is a superset of both), "thought" (only the
                  new symbols: the default of a decoder that follows its text through the
                  units, which renders the thought as a scene), "context" (everything).
        retrieve  put the k nearest scenes of ``index`` (or ``self.index``) before the question.
        history   earlier turns' symbols, oldest first (the chat passes them).
        show_thought  print the thought glossed (through ``on_thought``, default stdout).
        render_temperature  the decoder's temperature when it says the thought (None: the
                  core's ``temperature``; 0: greedy): the thought is where an answer's content
                  is drawn, its saying can be plain.
        Bad input (empty prompt, no room, bad options) raises BridgeError; a prompt longer than
        the context is cut to its last symbols and the Answer's notes say so.
        """
        t0 = time.perf_counter()
        check_options(temperature, top_k, top_p)
        if render_temperature is None:
            render_temperature = temperature
        elif render_temperature < 0:
            raise BridgeError(f"render_temperature must be >= 0 (0 = greedy), got "
                              f"{render_temperature}")
        if read is not None and read not in READS:
            raise BridgeError(f"read must be one of {READS}, got {read!r}")
        if max_symbols < 1 or (max_tokens is not None and max_tokens < 1):
            raise BridgeError(f"max_symbols and max_tokens must be >= 1, got {max_symbols}, "
                              f"{max_tokens}")
        if max_symbols + 1 >= self.core.cfg.max_seq_len:  # + the thought's closing EOS
            raise BridgeError(f"max_symbols={max_symbols} leaves no room for the prompt in the "
                              f"core's context of {self.core.cfg.max_seq_len} symbols")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        encoded = self.encode(prompt)
        retrieved, scenes = self._retrieve(encoded.ids, retrieve, index)
        room = self.core.cfg.max_seq_len - max_symbols - 1
        ctx = assemble(encoded.ids, room, scenes, history)
        retrieved = retrieved[: ctx.retrieved_kept]
        t_encoded = time.perf_counter()
        thought = think(self.core, ctx.ids, max_symbols, temperature=temperature, top_k=top_k,
                        top_p=top_p, generator=generator, use_cache=use_cache,
                        vocab_limit=len(self.lexicon), close_with=RECORD_END)
        gloss = self.gloss(thought.ids)
        if show_thought:
            (on_thought or _print_thought)(gloss)
        if read is None:  # a decoder that follows its text renders the thought as its scene
            read = "turn" if self.pointer_free else "thought"
        # The decoder reads the thought as a whole record: closed by the core's EOS, as every
        # record it was aligned on is (model.decoder_session.RECORD_END), whatever stopped the
        # thought. Reading the closing state, its text ends at the thought's last unit; without
        # it the render ran on past the thought into words no unit asked for. What it reads of
        # them: the final states thinking already has, or one more forward for another view.
        ids = torch.tensor([list(ctx.ids) + list(thought.ids) + [RECORD_END]])
        states = thought.states
        if self.decoder.cfg.core_read != "final":
            states = read_core(self.core, ids, self.decoder.cfg.core_read)
        states, shown = (self._read(t, len(ctx.ids), len(ctx.question), read)
                         for t in (states, ids))
        units = shown.shape[1] - 1  # the closing EOS is no unit to render
        pointer = pointer_for(self.decoder, self.lexicon, self.tokenizer, units)
        if max_tokens is None:
            max_tokens = answer_room(units)
        rendered = render(self.decoder, self.tokenizer, states, self.bos, self.eos, max_tokens,
                          temperature=render_temperature, top_k=top_k, top_p=top_p,
                          generator=generator, on_text=on_text, core_ids=shown,
                          pointer=pointer)
        end = time.perf_counter()
        timings = Timings(encode_s=t_encoded - t0, think_s=thought.seconds,
                          render_s=rendered.seconds, total_s=end - t0,
                          first_word_s=(rendered.first_word_at - t0
                                        if rendered.first_word_at is not None else None),
                          context_symbols=len(ctx.ids), thought_symbols=len(thought.ids),
                          text_tokens=len(rendered.token_ids))
        return Answer(rendered.text, thought.ids, gloss, timings, prompt_symbols=ctx.question,
                      stopped=thought.stopped, text_stopped=rendered.stopped,
                      unknown_symbols=encoded.unknown,
                      notes=encoded.notes + ctx.notes, retrieved=retrieved)

    def _read(self, states: torch.Tensor, n_context: int, n_question: int,
              read: str) -> torch.Tensor:
        if read == "context":
            return states
        if read == "thought" and states.shape[1] > n_context + 1:  # a thought, then its EOS
            return states[:, n_context:]
        return states[:, n_context - n_question:]  # "turn", or a thought that is empty

    def _retrieve(self, question: list[int], k: int, index) -> tuple[list[Retrieved],
                                                                      list[list[int]]]:
        if k <= 0:
            return [], []
        index = index if index is not None else self.index
        if index is None:
            raise BridgeError(f"retrieve={k} needs an index (dualmind index build ...; pass "
                              "index=SceneIndex.load(DIR) or --index DIR)")
        index.check_core(self.core_fingerprint)
        hits = index.search(self.core, question, k)
        return ([Retrieved(h.rank, h.score, h.text, h.key) for h in hits],
                [h.units for h in hits])


def _print_thought(gloss: str) -> None:
    print(f"[thought] {gloss}", file=sys.stdout, flush=True)
