"""Shared pieces of the export tests (no tests here): watch how many whole tensors the sharded
exporter holds at once, the property that lets it consolidate a checkpoint larger than memory."""

from __future__ import annotations

import weakref


def watch_resident_tensors(monkeypatch) -> list[int]:
    """Wrap dualmind.checkpoint.export_sharded.load_dcp_tensor so that every tensor it loads is
    watched; at each load, the ones loaded before must already be gone. Returns a one-item list
    holding the most whole tensors alive at once (1 when the export goes strictly tensor by
    tensor)."""
    import dualmind.checkpoint.export_sharded as export_sharded

    plain, alive, peak = export_sharded.load_dcp_tensor, [], [0]

    def watched(*args):
        tensor = plain(*args)
        alive[:] = [r for r in alive if r() is not None]
        alive.append(weakref.ref(tensor))
        peak[0] = max(peak[0], len(alive))
        return tensor

    monkeypatch.setattr(export_sharded, "load_dcp_tensor", watched)
    return peak
