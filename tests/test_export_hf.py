"""`dualmind export --format hf`: the core as a Hugging Face Llama folder that transformers loads
with no dualmind code (same logits, same greedy continuation), that dualmind loads back bit for
bit, written shard by shard from a .ckpt or a sharded (DCP) folder; the decoder beside it, and
``Bridge.from_pretrained`` on the whole folder. transformers is only needed by the tests that
compare against it (skipped without it)."""

from __future__ import annotations

import argparse
import json
import warnings

import pytest
import torch

from dualmind.checkpoint.export import ExportError
from dualmind.checkpoint.export_hf import export_hf, parse_size
from dualmind.checkpoint.export_hf_load import load_hf_core, load_hf_decoder
from dualmind.model.boundary import LENGTH_GAIN
from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore
from test_bridge_toy import align_checkpoint, build_toy
from test_export_support import watch_resident_tensors

pytestmark = pytest.mark.usefixtures("one_thread")
# fp32 on both sides; the two implementations order a few reductions differently
TOL = dict(atol=1e-5, rtol=1e-5)
ROPES = {
    "default": None,
    "linear": {"type": "linear", "factor": 4.0},
    "llama3": {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_seq_len": 16},
    "ntk": {"type": "ntk", "factor": 4.0},
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """(lexicon folder, lexicon, text tokenizer path, core, decoder) of the bridge's toy."""
    lexicon, tok, core, decoder = build_toy()
    d = tmp_path_factory.mktemp("toy")
    lexicon.save(d / "lexicon")
    tok.save(str(d / "tokenizer.json"))  # found by the export as the corpus folder's tokenizer
    return d, lexicon, core, decoder


def _core(lexicon, rope: str, tie: bool, seed: int = 0) -> HyperCore:
    cfg = CoreConfig(vocab_size=len(lexicon) + 40, dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                     ffn_dim=96, max_seq_len=128, tie_embeddings=tie, rope_theta=5000.0,
                     rope_scaling=ROPES[rope], init_std=0.15)  # large weights: errors would show
    torch.manual_seed(seed)
    return HyperCore(cfg).eval()


def _core_checkpoint(path, lexicon, core, step=5, fingerprint=None):
    meta = {"stage": "core", "lexicon_fingerprint": fingerprint or lexicon.fingerprint,
            "model": core.cfg.to_dict()}
    torch.save({"state_dict": {f"core.{k}": v for k, v in core.state_dict().items()},
                "dualmind": meta, "global_step": step}, path)
    return path


def _ids(vocab: int, batch: int = 2, length: int = 60) -> torch.Tensor:
    return torch.randint(4, vocab, (batch, length), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(("rope", "tie"), [("default", True), ("linear", False),
                                           ("llama3", True), ("ntk", False)])
def test_transformers_loads_the_core_with_the_same_logits(toy, tmp_path, rope, tie):
    transformers = pytest.importorskip("transformers")
    d, lexicon, _, _ = toy
    core = _core(lexicon, rope, tie)
    out = export_hf(_core_checkpoint(tmp_path / "c.ckpt", lexicon, core), tmp_path / "hf",
                    d / "lexicon")
    config = json.loads((out / "config.json").read_text())
    assert config["tie_word_embeddings"] == tie and config["head_dim"] == 16
    if rope == "ntk":  # static NTK is a plain RoPE with a larger base
        assert config["rope_scaling"] is None and config["rope_theta"] > 5000.0
    hf = transformers.LlamaForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    assert hf.config.rope_parameters["rope_type"] == ("default" if rope == "ntk" else rope)
    ids = _ids(core.cfg.vocab_size)
    with torch.no_grad():
        want, got = core(ids).logits, hf(ids).logits
    assert want.abs().max() > 1.0  # a meaningful comparison, not two near-zero tensors
    torch.testing.assert_close(got, want, **TOL)
    if rope == "ntk":  # the scaling really acts at these positions, so the test above has teeth
        plain = HyperCore(CoreConfig(**{**core.cfg.to_dict(), "rope_scaling": None})).eval()
        plain.load_state_dict(core.state_dict())
        with torch.no_grad():
            assert (plain(ids).logits - want).abs().max() > 1e-3
    # greedy continuation: transformers stops at EOS (generation_config), ours keeps it
    prompt = ids[:1, :6]
    with torch.no_grad():
        theirs = hf.generate(prompt, max_new_tokens=8, do_sample=False)[0, 6:].tolist()
    ours = core.generate(prompt, 8, temperature=0.0, eos_id=2).ids[0, 6:].tolist()
    assert theirs == ours[:len(theirs)] and (len(theirs) == 8 or theirs[-1] == 2)


def test_dualmind_loads_the_export_back_bit_identically(toy, tmp_path):
    d, lexicon, _, _ = toy
    for rope, tie in (("ntk", True), ("llama3", False)):
        core = _core(lexicon, rope, tie, seed=3)
        out = export_hf(_core_checkpoint(tmp_path / f"{rope}.ckpt", lexicon, core),
                        tmp_path / rope, d / "lexicon")
        back, marker = load_hf_core(out, expect_lexicon=lexicon.fingerprint)
        assert back.cfg == core.cfg  # the exact config, NTK form included (dualmind.json)
        want, got = core.state_dict(), back.state_dict()
        assert got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) and got[k].dtype == want[k].dtype for k in want)
        assert (back.output.weight is back.tok_embeddings.weight) == tie
        ids = _ids(core.cfg.vocab_size)
        with torch.no_grad():
            assert torch.equal(back(ids).logits, core(ids).logits)
        assert marker["stage"] == "core" and marker["global_step"] == 5
        assert marker["lexicon_fingerprint"] == lexicon.fingerprint and marker["decoder"] is None
    with pytest.raises(ExportError, match="lexicon"):
        load_hf_core(out, expect_lexicon="ab" * 32)


def test_a_plain_llama_folder_loads_as_a_core(tmp_path):
    """No dualmind.json: the shape comes from config.json alone (a save_pretrained folder)."""
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=96,
                                      num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, max_position_embeddings=128,
                                      tie_word_embeddings=False, initializer_range=0.15)
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(config).eval()
    hf.save_pretrained(tmp_path / "llama")
    core, marker = load_hf_core(tmp_path / "llama")
    assert marker == {} and core.cfg.n_kv_heads == 2 and not core.cfg.tie_embeddings
    ids = _ids(97)
    with torch.no_grad():
        torch.testing.assert_close(core(ids).logits, hf(ids).logits, **TOL)


def test_sharded_checkpoint_exports_shard_by_shard_as_the_ckpt_does(toy, tmp_path, monkeypatch):
    """A DCP folder (as fsdp2 saves it) and a .ckpt of the same core give byte-identical weight
    files; the DCP export holds one whole tensor at a time; transformers loads the shards."""
    import torch.distributed.checkpoint as dcp

    d, lexicon, _, _ = toy
    core = _core(lexicon, "default", tie=False, seed=4)
    limit = 60_000  # the output head alone (680 x 64 fp32 = 174 kB) is over it: a shard of its own
    from_ckpt = export_hf(_core_checkpoint(tmp_path / "c.ckpt", lexicon, core), tmp_path / "a",
                          d / "lexicon", max_shard_bytes=limit)
    folder = tmp_path / "step0000005.ckpt"
    with warnings.catch_warnings():  # "no process group: saving in a single process" - intended
        warnings.simplefilter("ignore", UserWarning)
        dcp.save({"state_dict": {f"core.{k}": v for k, v in core.state_dict().items()}},
                 checkpoint_id=str(folder), no_dist=True)
    torch.save({"global_step": 5, "dualmind": {"stage": "core", "model": core.cfg.to_dict(),
                                              "lexicon_fingerprint": lexicon.fingerprint}},
               folder / "meta.pt")
    peak = watch_resident_tensors(monkeypatch)
    from_dcp = export_hf(folder, tmp_path / "b", d / "lexicon", max_shard_bytes=limit)
    assert peak[0] == 1
    index = json.loads((from_dcp / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and not (from_dcp / "model.safetensors").exists()
    for name in shards:
        size = (from_dcp / name).stat().st_size
        assert size <= limit + 4096 or len([k for k, v in index["weight_map"].items()
                                            if v == name]) == 1  # (+ its JSON header)
        assert (from_dcp / name).read_bytes() == (from_ckpt / name).read_bytes(), name
    assert index["metadata"]["total_size"] == sum(t.numel() * 4 for t in core.parameters())
    back, _ = load_hf_core(from_dcp)
    assert all(torch.equal(back.state_dict()[k], v) for k, v in core.state_dict().items())
    transformers = pytest.importorskip("transformers")
    hf = transformers.LlamaForCausalLM.from_pretrained(from_dcp, attn_implementation="eager")
    ids = _ids(core.cfg.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(hf.eval()(ids).logits, core(ids).logits, **TOL)


def test_the_tokenizer_maps_hyperphrase_symbols_to_the_cores_ids(toy, tmp_path):
    from tokenizers import Tokenizer

    d, lexicon, _, _ = toy
    core = _core(lexicon, "default", tie=True)
    out = export_hf(_core_checkpoint(tmp_path / "c.ckpt", lexicon, core), tmp_path / "hf",
                    d / "lexicon")
    ids = lexicon.encode("Where does the zebra Quillon sleep? The night is full of stars.")
    phrase = lexicon.to_hyperphrase(ids)
    plain = Tokenizer.from_file(str(out / "tokenizer.json"))  # the tokenizers library alone
    assert plain.encode(phrase).ids == ids and len(ids) > 5
    assert plain.decode(ids) == phrase
    assert plain.get_vocab_size() == len(lexicon)
    assert plain.encode(phrase + "x" + lexicon.to_hyperphrase([2])).ids == ids + [3, 2]
    transformers = pytest.importorskip("transformers")
    auto = transformers.AutoTokenizer.from_pretrained(out)
    assert auto(phrase)["input_ids"] == ids  # no BOS added: the core's records hold none
    assert (auto.pad_token_id, auto.bos_token_id, auto.eos_token_id, auto.unk_token_id) == (
        0, 1, 2, 3)
    assert auto.decode(ids + [2], skip_special_tokens=True) == phrase


def test_bridge_loads_the_hf_export_of_an_align_checkpoint(toy, tmp_path):
    from dualmind.bridge.bridge import Bridge
    from dualmind.bridge.errors import BridgeError

    d, lexicon, core, decoder = toy
    ckpt = align_checkpoint(tmp_path / "last.ckpt", lexicon, core, decoder, data_dir=d)
    out = export_hf(ckpt, tmp_path / "hf", d / "lexicon", max_shard_bytes=200_000)
    assert {p.name for p in (out / "decoder").iterdir()} >= {"config.json", "tokenizer.json"}
    dec, dec_config = load_hf_decoder(out / "decoder")
    want, got = decoder.state_dict(), dec.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert dec.output.weight is dec.tok_embeddings.weight  # tied, stored once
    assert dec_config["aliases"] == {"output.weight": "tok_embeddings.weight"}

    kw = dict(max_symbols=6, max_tokens=12, seed=5)
    question = "Where does the zebra Quillon sleep?"
    loaded = Bridge.from_pretrained(out)
    expected = Bridge(lexicon, core, decoder, loaded.tokenizer).generate(question, **kw)
    answer = loaded.generate(question, **kw)
    assert (answer.text, answer.thought_symbols) == (expected.text, expected.thought_symbols)
    assert loaded.notes == [] and loaded.core_fingerprint == dec_config["core_fingerprint"]
    from dualmind.bridge.cli_common import load_bridge  # `dualmind generate/chat --model OUT`

    cli = load_bridge(argparse.Namespace(model=str(out), lexicon=None, adapter=None,
                                         tokenizer=None, index=None, retrieve=0))
    assert cli.core_fingerprint == loaded.core_fingerprint

    # a `dualmind export` folder (what `dualmind adapt merge` writes) exports the same bytes
    from dualmind.checkpoint.export import export_checkpoint

    again = export_hf(export_checkpoint(ckpt, tmp_path / "plain"), tmp_path / "again",
                      d / "lexicon", max_shard_bytes=200_000)
    for sub in ("", "decoder/"):
        files = sorted(p.name for p in (out / sub).glob("model*"))
        assert files and files == sorted(p.name for p in (again / sub).glob("model*"))
        assert all((out / sub / f).read_bytes() == (again / sub / f).read_bytes() for f in files)

    torn = torch.load(ckpt, weights_only=True)
    del torn["state_dict"]["decoder.layers.0.cross_attention.wk.weight"]
    torch.save(torn, tmp_path / "torn.ckpt")
    with pytest.raises(ExportError, match=r"decoder's tensors .* missing \['layers\.0\.cross"):
        export_hf(tmp_path / "torn.ckpt", tmp_path / "torn", d / "lexicon", tokenizer=d)

    dec_config["core_fingerprint"] = "0" * 16  # a decoder aligned to another core
    (out / "decoder" / "config.json").write_text(json.dumps(dec_config))
    with pytest.raises(BridgeError, match="core mismatch"):
        Bridge.from_pretrained(out)
    core_only = export_hf(_core_checkpoint(tmp_path / "c.ckpt", lexicon, core), tmp_path / "c",
                          d / "lexicon")
    with pytest.raises(BridgeError, match="without a language decoder"):
        Bridge.from_pretrained(core_only)


def test_an_align_checkpoint_from_before_the_start_gain_exports_what_it_computed(toy, tmp_path):
    """A boundary head stored its start bias without its gain as ``at_start``: the export names
    it ``start_bias`` and rescales it, so the exported decoder gives the same logits."""
    from dualmind.model.decoder import LanguageDecoder
    from dualmind.model.decoder_config import DecoderConfig

    d, lexicon, core, _ = toy
    cfg = dict(vocab_size=416, dim=48, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=96,
               core_dim=64, cross_every=1, gated=False, max_seq_len=128, tie_embeddings=True,
               mask_mode="pointer", boundary_head=True)
    torch.manual_seed(3)
    decoder = LanguageDecoder(DecoderConfig(**cfg)).eval()
    with torch.no_grad():
        decoder.boundary.start_bias.copy_(torch.linspace(-0.2, 0.3, decoder.cfg.max_advance + 1))
    ckpt = align_checkpoint(tmp_path / "last.ckpt", lexicon, core, decoder, data_dir=d)
    old = torch.load(ckpt, weights_only=False)
    state = old["state_dict"]
    state["decoder.boundary.at_start"] = state.pop("decoder.boundary.start_bias") * LENGTH_GAIN
    torch.save(old, ckpt)
    out = export_hf(ckpt, tmp_path / "hf", d / "lexicon", max_shard_bytes=200_000)
    exported, _ = load_hf_decoder(out / "decoder")
    want, got = decoder.state_dict(), exported.state_dict()
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-6, atol=0)


def test_bad_input_is_refused_with_the_file_named(toy, tmp_path, capsys):
    from dualmind.checkpoint.export_cli import add_arguments, run

    d, lexicon, _, _ = toy
    core = _core(lexicon, "llama3", tie=True)
    ckpt = _core_checkpoint(tmp_path / "c.ckpt", lexicon, core)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "hf"
    args = [str(ckpt), "--format", "hf", "--out", str(out), "--max-shard-size", "100KB"]
    assert run(parser.parse_args(args)) == 2  # no --lexicon
    assert "needs --lexicon" in capsys.readouterr().err
    assert run(parser.parse_args(args + ["--lexicon", str(d / "lexicon")])) == 0
    assert "Hugging Face Llama folder (" in capsys.readouterr().out
    assert run(parser.parse_args(args + ["--lexicon", str(d / "lexicon")])) == 0  # replaced
    assert not list(tmp_path.glob(".hf.*"))  # no staging folder left behind

    config = json.loads((out / "config.json").read_text())
    for key, value, named in (("num_hidden_layers", 3, "n_layers"),
                              ("rms_norm_eps", 1e-6, "norm_eps"),
                              ("rope_theta", 10000.0, "RoPE")):
        (out / "config.json").write_text(json.dumps({**config, key: value}))
        with pytest.raises(ExportError, match=rf"config\.json.*{named}"):
            load_hf_core(out)
    (out / "config.json").write_text(json.dumps(config))
    assert load_hf_core(out)[0].cfg == core.cfg

    other = _core_checkpoint(tmp_path / "o.ckpt", lexicon, core, fingerprint="cd" * 32)
    with pytest.raises(ExportError, match="lexicon"):
        export_hf(other, tmp_path / "o", d / "lexicon")
    torn = torch.load(ckpt, weights_only=True)
    del torn["state_dict"]["core.layers.1.feed_forward.w2.weight"]
    torch.save(torn, tmp_path / "torn.ckpt")
    with pytest.raises(ExportError, match=r"missing \['layers\.1\.feed_forward\.w2"):
        export_hf(tmp_path / "torn.ckpt", tmp_path / "torn", d / "lexicon")
    assert not (tmp_path / "torn").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not overwriting"):
        export_hf(ckpt, tmp_path / "busy", d / "lexicon")
    with pytest.raises(ExportError, match="stage 'core'"):
        export_hf(ckpt, tmp_path / "t", d / "lexicon", tokenizer=d / "tokenizer.json")
    assert [parse_size(s) for s in ("5GB", "40kb", "123")] == [5 * 10**9, 40_000, 123]
    with pytest.raises(ExportError, match="max-shard-size"):
        parse_size("5 gigs")


def test_eval_reads_the_hf_export_as_it_reads_the_checkpoint(toy, tmp_path):
    """`dualmind eval OUT` on an HF export: the same core and decoder weights, the same
    metadata the scoring needs (stage, lexicon, context), and the pairing check passes."""
    from dualmind.evaluate.load import load_models, read_models

    d, lexicon, core, decoder = toy
    ckpt = align_checkpoint(tmp_path / "last.ckpt", lexicon, core, decoder, data_dir=d)
    out = export_hf(ckpt, tmp_path / "hf", d / "lexicon", max_shard_bytes=200_000)
    want_core, want_dec, want_meta, _ = read_models(ckpt)
    got_core, got_dec, got_meta = load_models(out)
    for want, got in ((want_core, got_core), (want_dec, got_dec)):
        a, b = want.state_dict(), got.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # (this toy records no context: both derive it from the run's config, as old checkpoints)
    assert want_meta["context"] == {"core": core.cfg.max_seq_len, "text": 128}
    for key in ("stage", "lexicon_fingerprint", "core_fingerprint", "decoder", "context"):
        assert got_meta[key] == want_meta[key], key
