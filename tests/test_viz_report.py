"""The viz report as a file: every panel present, offline, bounded, honest about what it left
out (no decoder, a cut window), and the `dualmind viz` command."""

from __future__ import annotations

import re

import pytest

from dualmind.cli import main
from dualmind.viz.load import VizError
from dualmind.viz.report import split_documents, write_report
from dualmind.viz.select import choose, spread
from test_viz_support import PROMPT, align_report, tiny_run

PANELS = ("lens", "attention", "cross", "norms", "compare")


def panels(html: str) -> list[str]:
    return re.findall(r'<section id="[^"]+" data-panel="([^"]+)"', html)


def test_align_report_shows_every_panel_offline_and_small():
    index = align_report()
    html = index.read_text(encoding="utf-8")
    assert index.name == "index.html"
    assert panels(html) == list(PANELS)
    # figures: lens, 2 core layers, 2 + 1 cross-attention maps (input, rendering), norms,
    # drift: all embedded
    assert html.count('src="data:image/png;base64,') == 8
    assert not re.search(r'(src|href)="(https?:)?//', html), "the page must not fetch anything"
    assert index.stat().st_size < 1_000_000
    assert "report size" in html and "KiB" in html
    assert "keeper" in html  # the input's symbols, glossed
    assert "null slot" in html
    # the moved core differs only from layer 2's feed-forward on: drift starts at layer 3
    assert "first layer that moved: 3" in html


def test_core_only_report_says_why_there_is_no_decoder_and_windows_long_input(tmp_path):
    run = tiny_run()
    index = write_report(run["core"], PROMPT, tmp_path, layers=[1], heads=[0],
                         lexicon_dir=run["lexicon"], window=5)
    html = index.read_text(encoding="utf-8")
    assert panels(html) == ["lens", "attention", "cross", "norms"]
    assert "core-only checkpoint" in html
    assert re.search(r"the input is \d+ symbols long; this report shows only the first 5", html)
    assert html.count("data:image/png") == 3  # lens, layer 1, norms
    assert "layer 2 (output)" in html  # the lens always ends with the model's own output


def test_selection_is_checked_and_bounded():
    assert spread(80, 6) == [0, 16, 32, 47, 63, 79]
    assert spread(3, 6) == [0, 1, 2]
    assert choose("layers", None, 80, 6, 12) == spread(80, 6)
    with pytest.raises(VizError, match=r"layers selects 20; a report draws at most 12"):
        choose("layers", range(20), 80, 6, 12)
    with pytest.raises(VizError, match=r"heads \[9\] out of range: there are 4"):
        choose("heads", [0, 9], 4, 4, 8)
    assert split_documents("a b\n\n  \n\nc\n d") == ["a b", "c\n d"]


def test_lexicon_is_found_beside_the_corpus_or_asked_for(tmp_path):
    """Without --lexicon: the lexicon folder beside the run's corpus whose fingerprint is the
    checkpoint's (make demo's layout); with nothing recorded, an error asking for it."""
    import torch

    from dualmind.viz.load import load, load_lexicon

    run = tiny_run()
    lexicon, path = load_lexicon(None, load(run["core"]))
    assert path == run["lexicon"] and lexicon.fingerprint
    bare = tmp_path / "bare.ckpt"
    ckpt = torch.load(run["core"], weights_only=True)
    ckpt["hyper_parameters"] = {"cfg": {}}
    torch.save(ckpt, bare)
    with pytest.raises(VizError, match="pass the lexicon folder"):
        write_report(bare, PROMPT, tmp_path)


def test_bad_inputs_are_named(tmp_path):
    run = tiny_run()
    with pytest.raises(VizError, match="the text is empty"):
        write_report(run["core"], "\n\n", tmp_path, lexicon_dir=run["lexicon"])
    with pytest.raises(VizError, match="no checkpoint"):
        write_report(tmp_path / "nothing", PROMPT, tmp_path, lexicon_dir=run["lexicon"])


def test_cli_prints_path_and_size(tmp_path, capsys):
    run = tiny_run()
    code = main(["viz", "--checkpoint", str(run["core"].parent.parent), "--text", PROMPT,
                 "--out", str(tmp_path / "r"), "--layers", "2", "--heads", "1,3",
                 "--positions", "0,2", "--lexicon", str(run["lexicon"])])
    out = capsys.readouterr().out
    assert code == 0
    assert re.fullmatch(rf"report: {re.escape(str(tmp_path / 'r' / 'index.html'))} "
                        r"\(\d+ KiB\)\n", out)
    code = main(["viz", "--checkpoint", str(run["core"]), "--text", "x", "--out",
                 str(tmp_path / "r2"), "--heads", "7", "--lexicon", str(run["lexicon"])])
    assert code == 2
    assert "heads [7] out of range" in capsys.readouterr().err


def test_compare_accepts_an_adapter_folder(tmp_path, monkeypatch):
    """An adapter folder goes through dualmind.adapters.load_adapter onto a copy of the core
    (the base stays as it was); its refusals and its absence are VizErrors naming the folder."""
    import torch

    from dualmind.viz import load as viz_load

    run = tiny_run()
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    seen = []

    def fake_load_adapter(core, path):
        seen.append(path)
        with torch.no_grad():
            core.layers[1].feed_forward.w2.weight.mul_(2.0)
        return core

    monkeypatch.setattr(viz_load, "_adapter_loader", lambda: fake_load_adapter)
    models = viz_load.load(run["core"])
    before = models.core.layers[1].feed_forward.w2.weight.clone()
    other, description = viz_load.load_compare(adapter, models)
    assert seen == [adapter] and "adapter" in description
    assert torch.equal(models.core.layers[1].feed_forward.w2.weight, before)
    assert torch.equal(other.layers[1].feed_forward.w2.weight, 2.0 * before)

    def refusing(core, path):
        raise ValueError("adapter was trained on core aaaa, but this core is bbbb")

    monkeypatch.setattr(viz_load, "_adapter_loader", lambda: refusing)
    with pytest.raises(VizError, match=r"--compare .*adapter.*trained on core aaaa"):
        viz_load.load_compare(adapter, models)
    monkeypatch.setattr(viz_load, "_adapter_loader", lambda: None)
    with pytest.raises(VizError, match="needs? dualmind.adapters.load_adapter"):
        viz_load.load_compare(adapter, models)
    with pytest.raises(VizError, match="no such checkpoint or folder"):
        viz_load.load_compare(tmp_path / "missing", models)


@pytest.mark.slow  # imports PEFT (several seconds); the routing itself is tested above
def test_compare_with_a_real_lora_adapter(tmp_path):
    """A LoRA adapter saved by dualmind.adapters on the top block: the report's drift shows
    the layers below untouched and the top block moved."""
    import copy

    import torch

    from dualmind.adapters.lora import apply_lora, core_fingerprint, lora_config, save_adapter
    from dualmind.adapters.settings import LoraSettings
    from dualmind.viz import load as viz_load

    run = tiny_run()
    models = viz_load.load(run["core"])
    lora = apply_lora(copy.deepcopy(models.core),
                      lora_config(LoraSettings(r=2, dropout=0.0, layers=[2])))
    with torch.no_grad():  # LoRA's B starts at zero: give the adapter something to change
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    save_adapter(lora, tmp_path / "adapter", lexicon_fingerprint=None,
                 core_fingerprint=core_fingerprint(models.core))
    index = write_report(run["core"], PROMPT, tmp_path / "r", layers=[0], heads=[0],
                         lexicon_dir=run["lexicon"], compare=tmp_path / "adapter")
    html = index.read_text(encoding="utf-8")
    assert "base core + adapter" in html
    assert "first layer that moved: 3" in html


def test_export_folder_with_its_tokenizer(tmp_path, monkeypatch):
    """A `dualmind export` folder (no corpus recorded) finds the decoder's tokenizer beside it;
    greedy rendering stops at RENDER_DOCS documents and says so."""
    import shutil

    from dualmind.checkpoint.export import export_checkpoint
    from dualmind.viz import decoder_panel

    monkeypatch.setattr(decoder_panel, "RENDER_DOCS", 1)

    run = tiny_run()
    export = export_checkpoint(run["align"], tmp_path / "export")
    index = write_report(export, PROMPT, tmp_path / "r", layers=[0], heads=[0],
                         lexicon_dir=run["lexicon"])
    assert "tokenizer was not found" in index.read_text(encoding="utf-8")
    shutil.copy(run["corpus"] / "tokenizer.json", export / "tokenizer.json")
    html = write_report(export, PROMPT, tmp_path / "r", layers=[0], heads=[0],
                        lexicon_dir=run["lexicon"]).read_text(encoding="utf-8")
    assert panels(html) == ["lens", "attention", "cross", "norms"]
    assert "greedy rendering: cross-attention" in html and "tokenizer was not found" not in html
    assert "only the first 1 of the 2 documents in the window are rendered" in html
    assert "<b>document 1</b>" in html and "<b>document 2</b>" not in html


def test_a_document_is_rendered_from_its_units_closed_by_the_cores_eos(tmp_path, monkeypatch):
    """As the bridge and `dualmind eval` render: the document's units, then the core's EOS (so
    the rendering ends after its last unit), read afresh: one more state than the units."""
    from dualmind.model.decoder import LanguageDecoder
    from dualmind.model.decoder_session import RECORD_END

    read = []
    real = LanguageDecoder.generate

    def spy(self, states, prompt, *args, core_ids=None, **kw):
        read.append((states.shape[1], core_ids[0].tolist()))
        return real(self, states, prompt, *args, core_ids=core_ids, **kw)

    monkeypatch.setattr(LanguageDecoder, "generate", spy)
    run = tiny_run()
    write_report(run["align"], PROMPT, tmp_path / "r", layers=[0], heads=[0],
                 lexicon_dir=run["lexicon"])
    assert read and all(ids[-1] == RECORD_END and RECORD_END not in ids[:-1]
                        and n == len(ids) for n, ids in read)


def test_figures_draw_awkward_labels():
    """Dollar signs (matplotlib's mathtext), newlines and carriage returns (no glyph) in glosses
    or text tokens must not break a figure."""
    import numpy as np

    from dualmind.viz import figures

    words = [["$5 and $6", "a\nb"], ["\r", "_^{"]]
    png = figures.logit_lens(np.array([[0.5, 0.2], [0.9, 0.1]]), words, ["layer 0", "layer 1"],
                             ["0:$x$", "1:\t"])
    assert png.startswith(b"\x89PNG")
    assert figures._short("a\nb$c") == "a⏎b\\$c"
