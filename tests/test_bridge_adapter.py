"""The bridge with a LoRA adapter (helper package dualmind.adapters): an adapter of this core is
applied and travels with Bridge.save; an adapter trained on another core is refused, naming both
fingerprints."""

from __future__ import annotations

import pytest
import torch

from dualmind.bridge.bridge import Bridge
from dualmind.bridge.errors import BridgeError
from test_bridge_toy import align_checkpoint, build_toy

adapters = pytest.importorskip("dualmind.adapters.lora")
pytestmark = pytest.mark.usefixtures("one_thread")


def make_adapter(core, out, lexicon_fingerprint):
    """LoRA on the attention projections of ``core`` (a copy), non-zero, saved to ``out``."""
    from peft import LoraConfig, inject_adapter_in_model

    from dualmind.model.core import HyperCore

    plain = HyperCore(core.cfg)
    plain.load_state_dict(core.state_dict())
    fingerprint = adapters.core_fingerprint(plain)
    inject_adapter_in_model(LoraConfig(r=2, lora_alpha=4, target_modules=["wq", "wv"]), plain)
    with torch.no_grad():
        for name, p in plain.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # B starts at zero: make the adapter change something
    adapters.save_adapter(plain, out, lexicon_fingerprint=lexicon_fingerprint,
                          core_fingerprint=fingerprint)
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adapter")
    lexicon, tok, core, decoder = build_toy()
    tok.save(str(tmp / "tokenizer.json"))
    lexicon.save(tmp / "lexicon")
    ckpt = align_checkpoint(tmp / "align.ckpt", lexicon, core, decoder, data_dir=tmp)
    return tmp, lexicon, core, decoder, ckpt


def test_an_adapter_of_this_core_is_applied_and_saved_with_the_bridge(setup):
    tmp, lexicon, core, decoder, ckpt = setup
    adapter = make_adapter(core, tmp / "good_adapter", lexicon.fingerprint)
    plain = Bridge.from_checkpoints(tmp / "lexicon", ckpt)
    adapted = Bridge.from_checkpoints(tmp / "lexicon", ckpt, adapter_dir=adapter)
    assert adapted.core_fingerprint == plain.core_fingerprint  # the plain core under it
    kw = dict(max_symbols=6, max_tokens=4, temperature=0.0)
    q = "Where does the zebra Quillon sleep?"
    ids = torch.tensor([lexicon.encode(q)])
    with torch.no_grad():
        assert not torch.allclose(plain.core(ids).logits, adapted.core(ids).logits)
    folder = adapted.save(tmp / "bridge")
    assert (folder / "adapter" / "dualmind.json").is_file()
    again = Bridge.from_pretrained(folder)
    assert again.generate(q, **kw).thought_symbols == adapted.generate(q, **kw).thought_symbols


def test_an_adapter_of_another_core_is_refused_naming_both_fingerprints(setup):
    tmp, lexicon, core, decoder, ckpt = setup
    from dualmind.model.core import HyperCore

    torch.manual_seed(99)
    other = HyperCore(core.cfg)
    adapter = make_adapter(other, tmp / "other_adapter", lexicon.fingerprint)
    mine, theirs = adapters.core_fingerprint(core), adapters.core_fingerprint(other)
    with pytest.raises(BridgeError) as err:
        Bridge.from_checkpoints(tmp / "lexicon", ckpt, adapter_dir=adapter)
    assert mine in str(err.value) and theirs in str(err.value)
