"""Codec benchmark: compression, exact round trip, encode speed, build cost of the lexicon.

    python benchmarks/codec.py                      # vocabularies 32768 and 65536, both levels
    python benchmarks/codec.py --vocab-sizes 32768 --levels lossless --no-write

Data: the embedded demo corpus (dualmind.sources.demo). Every 10th document of each language
is held out; lexicons are built on the rest and measured on the held-out prose only.

Reference tokenizers: tiktoken o200k_base, cl100k_base, gpt2, read offline from
$TIKTOKEN_CACHE_DIR (default: ../shared/data/tiktoken-cache next to this repository).
Without them the benchmark says so and reports our own figures only.

Speed is measured on one core (the process is pinned to one CPU) as MB of UTF-8 text
encoded per second of this process's CPU time (time.process_time: the development
machines are shared, and wall time would charge other people's jobs to whichever side
ran at the wrong moment), side by side with tiktoken o200k on the same texts in the same
run. `encode` is one call per document; `batch` is one `encode_batch` call for all of them.
  cold   a freshly loaded lexicon encodes the held-out documents once (caches empty);
  corpus a freshly loaded lexicon encodes the whole demo corpus once (what a corpus build
         sees: caches warm up as it goes);
  warm   the held-out documents again with warm caches.
Each figure is the median of 3 repetitions; the ratio is ours / o200k's ``encode_ordinary``.

Writes its table between <!-- codec:start --> and <!-- codec:end --> in
benchmarks/RESULTS.md (other sections of that file are left alone).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from results_md import write_section  # noqa: E402  (benchmarks/ is on sys.path as a script)

from dualmind.lexicon.lexicon import Lexicon  # noqa: E402

RESULTS = REPO / "benchmarks" / "RESULTS.md"
REFERENCES = ("o200k_base", "cl100k_base", "gpt2")
TARGETS = {("semantic", "en"): 2.5, ("semantic", "ru"): 3.5, ("lossless", "en"): 1.3}
SPEED_TARGET = 1.0
HOLDOUT_EVERY, HOLDOUT_AT = 10, 3


def pin_one_core() -> str:
    os.environ["RAYON_NUM_THREADS"] = "1"  # tokenizers (our piece fallback)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity here)"


def load_references() -> tuple[dict, str]:
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or str(REPO.parent / "shared/data/tiktoken-cache")
    if not Path(cache).is_dir():
        return {}, (f"reference tokenizers skipped: no tiktoken cache at {cache} "
                    "(set TIKTOKEN_CACHE_DIR)")
    os.environ["TIKTOKEN_CACHE_DIR"] = cache
    try:
        import tiktoken
    except ImportError:
        return {}, "reference tokenizers skipped: tiktoken is not installed (pip install tiktoken)"
    refs = {}
    for name in REFERENCES:
        try:
            refs[name] = tiktoken.get_encoding(name)
        except Exception as e:  # a missing or corrupt vocabulary file
            return {}, f"reference tokenizers skipped: {name} did not load from {cache}: {e}"
    return refs, f"reference tokenizers: tiktoken {tiktoken.__version__}, files from {cache}"


def split_demo():
    from dualmind.sources.demo import load_demo_documents

    docs = load_demo_documents()
    train, held = [], {"en": [], "ru": []}
    seen = {"en": 0, "ru": 0}
    for d in docs:
        i = seen[d.lang]
        seen[d.lang] += 1
        (held[d.lang].append(d.text) if i % HOLDOUT_EVERY == HOLDOUT_AT else train.append(d.text))
    return train, held, [d.text for d in docs]


def _proc_status_mb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _build_child(conn, texts, level, vocab_size, out):
    # The RSS high-water mark survives fork+exec on Linux (the parent's peak would show
    # up here), so reset it first (clear_refs 5) and read VmHWM after the build.
    try:
        Path("/proc/self/clear_refs").write_text("5")
        base, reset = _proc_status_mb("VmRSS"), True
    except OSError:
        base, reset = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, False
    t = time.perf_counter()
    lex = Lexicon.build(texts, level=level, vocab_size=vocab_size)
    seconds = time.perf_counter() - t
    lex.save(out)
    peak = _proc_status_mb("VmHWM") if reset else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    conn.send({"seconds": seconds, "peak_rss_mb": peak, "base_rss_mb": base})
    conn.close()


def build(texts, level, vocab_size, out) -> dict:
    """Build in a fresh (spawned) process so its peak memory is the build's own."""
    ctx = get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_build_child, args=(child, texts, level, vocab_size, out))
    p.start()
    child.close()  # so a crashed child ends recv() with EOFError instead of hanging
    try:
        result = parent.recv()
    except EOFError:
        result = None
    p.join()
    if result is None:
        raise RuntimeError(f"lexicon build process died (exit {p.exitcode})")
    if p.exitcode:
        raise RuntimeError(f"lexicon build failed (exit {p.exitcode})")
    return result


def mb_per_s(fn, texts, n_bytes, reps=3, fresh=None) -> float:
    times = []
    for _ in range(reps):
        state = fresh() if fresh else None
        t = time.process_time()
        fn(state, texts)
        times.append(time.process_time() - t)
    return n_bytes / max(statistics.median(times), 1e-9) / 1e6


def run(vocab_sizes: list[int], levels: list[str]) -> dict:
    pin = pin_one_core()
    refs, ref_note = load_references()
    print(ref_note)
    train, held, everything = split_demo()
    bytes_of = {lang: sum(len(t.encode()) for t in ts) for lang, ts in held.items()}
    all_bytes = sum(len(t.encode()) for t in everything)
    print(f"demo corpus: {len(train)} training documents "
          f"({sum(len(t.encode()) for t in train) / 1e6:.2f} MB), held out: "
          + ", ".join(f"{lang} {len(ts)} docs {bytes_of[lang] / 1e6:.2f} MB"
                      for lang, ts in held.items()))
    ref_tokens = {lang: {name: sum(len(enc.encode_ordinary(t)) for t in held[lang])
                         for name, enc in refs.items()} for lang in held}
    rows = []
    tmp = tempfile.mkdtemp(prefix="dm-codec-")
    for vocab_size in vocab_sizes:
        for level in levels:
            out = f"{tmp}/{level}-{vocab_size}"
            b = build(train, level, vocab_size, out)
            t = time.process_time()
            lex = Lexicon.load(out)
            b["load_s"] = time.process_time() - t
            print(f"{level} V={vocab_size}: {len(lex)} units, build {b['seconds']:.1f} s, "
                  f"peak RSS {b['peak_rss_mb']:.0f} MB")
            row = {"level": level, "vocab_size": vocab_size, "units": len(lex),
                   "build_s": b["seconds"], "load_s": b["load_s"], "peak_rss_mb": b["peak_rss_mb"],
                   "base_rss_mb": b["base_rss_mb"], "fingerprint": lex.fingerprint, "lang": {}}
            for lang, texts in held.items():
                encoded = [lex.encode(t) for t in texts]
                units = sum(map(len, encoded))
                # Semantic: a piece or byte is always a fallback (lemmas are their own units).
                # Lossless: frequent whole tokens may *be* pieces, so no such share exists.
                fallback = (sum(lex.unit(i).kind in ("piece", "byte")
                                for ids in encoded for i in ids) / units
                            if level == "semantic" else None)
                r = {"bytes": bytes_of[lang], "units": units, "fallback_share": fallback,
                     "bytes_per_unit": bytes_of[lang] / units,
                     "ratios": {n: ref_tokens[lang][n] / units for n in refs}}
                if level == "lossless":
                    r["round_trip_exact"] = sum(lex.decode(lex.encode(t)) == t for t in texts)
                    r["round_trip_docs"] = len(texts)
                row["lang"][lang] = r
            row["speed"] = measure_speed(out, held, everything, all_bytes, refs)
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("lang", "speed")}, indent=None)[:400])
    return {"rows": rows, "pin": pin, "ref_note": ref_note, "refs": list(refs),
            "ref_tokens": ref_tokens, "held_bytes": bytes_of, "all_bytes": all_bytes,
            "train_docs": len(train), "held_docs": {k: len(v) for k, v in held.items()},
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                       f"Python {platform.python_version()}",
            "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def measure_speed(lex_dir, held, everything, all_bytes, refs) -> dict:
    held_texts = held["en"] + held["ru"]
    held_bytes = sum(len(t.encode()) for t in held_texts)

    def ours(lex, texts):
        for t in texts:
            lex.encode(t)

    def ours_batch(lex, texts):
        lex.encode_batch(texts)

    def fresh():
        return Lexicon.load(lex_dir)

    out = {}
    o200k = refs.get("o200k_base")

    def ref(_, texts):
        for t in texts:
            o200k.encode_ordinary(t)

    warm_lex = fresh()
    ours(warm_lex, held_texts)
    for name, texts, _, kwargs in (
        ("cold", held_texts, held_bytes, {"fresh": fresh}),
        ("corpus", everything, all_bytes, {"fresh": fresh}),
        ("warm", held_texts, held_bytes, {"fresh": lambda: warm_lex}),
    ):
        for lang in ("en", "ru"):
            sub = [t for t in texts if (lang == "ru") == _is_ru(t)]
            nb = sum(len(t.encode()) for t in sub)
            mine = mb_per_s(ours, sub, nb, **kwargs)
            batch = mb_per_s(ours_batch, sub, nb, **kwargs)
            theirs = mb_per_s(ref, sub, nb) if o200k else None
            out[f"{name}/{lang}"] = {"ours_mb_s": mine, "batch_mb_s": batch, "o200k_mb_s": theirs,
                                     "ratio": mine / theirs if theirs else None,
                                     "batch_ratio": batch / theirs if theirs else None}
    return out


def _is_ru(text: str) -> bool:
    from dualmind.lexicon.script import detect_language

    return detect_language(text) == "ru"


def f(x, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def render(res: dict) -> str:
    refs = res["refs"]
    lines = ["## Codec (benchmarks/codec.py)", ""]
    lines.append(f"Measured {res['when']} on {res['machine']}; one core ({res['pin']}). "
                 f"{res['ref_note']}.")
    lines.append(f"Lexicons built on {res['train_docs']} documents of the demo corpus; figures on "
                 f"held-out documents only (en {res['held_docs']['en']} docs, "
                 f"{res['held_bytes']['en'] / 1e6:.2f} MB; ru {res['held_docs']['ru']} docs, "
                 f"{res['held_bytes']['ru'] / 1e6:.2f} MB).")
    lines.append("")
    lines.append("### Compression (UTF-8 bytes per position; ratio = reference tokens / our units)")
    lines.append("")
    cols = ["level", "vocab", "lang", "bytes/unit", *(f"× {r}" for r in refs),
            "pieces+bytes", "round trip", "target vs o200k"]
    hdr = "| " + " | ".join(cols) + " |"
    lines += [hdr, "|" + "---|" * (hdr.count("|") - 1)]
    for row in res["rows"]:
        for lang, r in row["lang"].items():
            rt = (f"{r['round_trip_exact']}/{r['round_trip_docs']} exact"
                  if "round_trip_exact" in r else "n/a (gloss)")
            target = TARGETS.get((row["level"], lang))
            got = r["ratios"].get("o200k_base")
            verdict = "—" if target is None else (
                "no reference" if got is None else
                f"≥ {target}: {'met' if got >= target else 'NOT met'}")
            cells = [row["level"], str(row["units"]), lang, f"{r['bytes_per_unit']:.2f}",
                     *(f"{r['ratios'][n]:.2f}" for n in refs),
                     f(r["fallback_share"], ".0%"), rt, verdict]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("pieces+bytes (semantic): share of our units that are sub-word fallbacks, i.e. "
                 "lemmas outside the vocabulary, mostly words never seen in the training split.")
    if refs:
        lines.append("")
        lines.append("Reference bytes/token on the same held-out text: " + "; ".join(
            f"{lang}: " + ", ".join(
                f"{n} {res['held_bytes'][lang] / res['ref_tokens'][lang][n]:.2f}" for n in refs)
            for lang in res["held_bytes"]))
    lines += ["", "### Encode speed, one core (MB/s of CPU time; ratio = ours / tiktoken o200k, "
                  "same texts, same run; target ≥ 1.0)", ""]
    hdr = ("| level | vocab | pass | lang | ours `encode` | ours `encode_batch` | o200k | "
           "ratio `encode` | ratio `encode_batch` |")
    lines += [hdr, "|---|---|---|---|---|---|---|---|---|"]

    for row in res["rows"]:
        for key, s in row["speed"].items():
            p, lang = key.split("/")
            lines.append(f"| {row['level']} | {row['units']} | {p} | {lang} | "
                         f"{s['ours_mb_s']:.1f} | {s['batch_mb_s']:.1f} | "
                         f"{f(s['o200k_mb_s'], '.1f')} | {f(s['ratio'], '.2f')} | "
                         f"{f(s['batch_ratio'], '.2f')} |")
    lines += ["", "Passes: cold = fresh lexicon over the held-out documents; corpus = fresh "
                  "lexicon over the whole demo corpus (what a corpus build sees); warm = held-out "
                  "again with warm caches. Median of 3. Loading the lexicon (below) is not "
                  "counted in the passes.", "",
              "### Lexicon build (training split of the demo corpus)", "",
              "| level | vocab | units | build s | load s | peak RSS MB of the build process "
              "| fingerprint |",
              "|---|---|---|---|---|---|---|"]
    for row in res["rows"]:
        lines.append(f"| {row['level']} | {row['vocab_size']} | {row['units']} | "
                     f"{row['build_s']:.1f} | {row['load_s']:.2f} | {row['peak_rss_mb']:.0f} "
                     f"(start {row['base_rss_mb']:.0f}) | {row['fingerprint'][:12]} |")
    return "\n".join(lines)




def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab-sizes", default="32768,65536",
                    help="comma-separated; the default lexicon size and a larger one")
    ap.add_argument("--levels", default="lossless,semantic")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--json", help="also write the raw figures to this JSON file")
    args = ap.parse_args(argv)
    res = run([int(v) for v in args.vocab_sizes.split(",")], args.levels.split(","))
    section = render(res)
    print(section)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, ensure_ascii=False))
    if not args.no_write:
        write_section("codec", section)
        print(f"wrote the codec section of {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
