"""How a run sets up a core's unit pieces (model.unit_pieces, dualmind.model.unit_pieces).

A core that trains from scratch reads its table from its lexicon and corpus tokenizer; a stage
that reads a trained core (align, the adapters) builds it with that core's own settings and gets
the table from its checkpoint.
"""

from __future__ import annotations


def adopt_unit_pieces(cfg: dict) -> None:
    """A stage that reads a trained core (align, the adapters) builds it with the core's own
    model.unit_pieces and model.piece_vocab when cfg.model leaves them off, so a core trained
    with pieces (make demo's) loads under the recipes' plain model config; the decision is
    printed and lands in cfg, hence in this run's checkpoint."""
    model, checkpoint = cfg.get("model") or {}, (cfg.get("core") or {}).get("checkpoint")
    if cfg.get("stage") in ("core", "lm") or not checkpoint or model.get("unit_pieces"):
        return
    from dualmind.checkpoint.sharded_load import core_checkpoint_meta

    theirs = core_checkpoint_meta(checkpoint).get("model") or {}
    if theirs.get("unit_pieces"):
        model["unit_pieces"], model["piece_vocab"] = theirs["unit_pieces"], theirs["piece_vocab"]
        print(f"core.checkpoint={checkpoint} composes its units from pieces: model.unit_pieces="
              f"{model['unit_pieces']}, model.piece_vocab={model['piece_vocab']} (from it)",
              flush=True)


def fill_unit_pieces(core, cfg: dict, stage: str, sharded: bool) -> None:
    """The table of a core that starts training (stage core); a core loaded from a checkpoint
    brings its own. Refused where pieces have no meaning (stage lm) or no support (fsdp2)."""
    if sharded:
        raise NotImplementedError("model.unit_pieces is not sharded by strategy=fsdp2 yet: "
                                  "use strategy=single or strategy=ddp, or model.unit_pieces=0")
    if stage == "lm":
        raise ValueError("stage=lm reads the BPE tokens themselves, which have no pieces: "
                         "set model.unit_pieces=0")
    if stage == "core":
        from dualmind.train.surfaces import unit_piece_table_for_run

        core.unit_pieces.set_table(unit_piece_table_for_run(cfg, core.cfg))
