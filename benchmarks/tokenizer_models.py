"""BPE and Unigram throughput: rapidrag against Hugging Face ``tokenizers`` and ``tokie``, single-threaded.

Tokenizers: byte-level BPE in the GPT-2, Llama 3 and Qwen2 (NFC) layouts and a SentencePiece Unigram with
Metaspace in the XLM-RoBERTa layout, each trained here with the ``tokenizers`` trainers on the SciFact corpus
(vocabulary 32,000; the layouts of tests/test_bpe.py and tests/test_unigram.py); and models trained by the
``sentencepiece`` package on the same corpus and converted by ``transformers`` (tests/test_sentencepiece.py): a
Unigram with its precompiled character map (as XLM-RoBERTa, bge-m3 and multilingual-e5 ship), and a BPE with
byte fallback (as Llama 2 and Mistral ship). Texts: every SciFact document
(title + " " + text) and the first 2,000 gcide passages.

- HF: ``encode_batch`` with ``TOKENIZERS_PARALLELISM=false`` (encodes serially on the calling thread).
- rapidrag: ``encode_batch(..., padding=False, n_threads=1)``, and a loop of ``encode(..., return_offsets=True)``.
- tokie: a loop of ``encode`` (it has no thread setting), where it loads the file; its ids are compared with HF's
  and mismatches counted.
Each figure is the best of ``--rounds`` runs over all texts, run one after another in this process; rapidrag's
ids must equal HF's on every text (checked after timing).

    python benchmarks/tokenizer_models.py --shared ../shared --out bpe_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LAYOUTS = ("gpt2", "llama3", "qwen2", "unigram-xlmr", "sentencepiece-unigram", "sentencepiece-bpe")


def best(fn: Any, rounds: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--vocab", type=int, default=32_000)
    parser.add_argument("--out", default="bpe_throughput.json")
    args = parser.parse_args()

    sys.path.insert(0, str(HERE.parent / "tests"))
    import tokenizers
    from test_bpe import train
    from test_sentencepiece import convert as convert_sentencepiece
    from test_sentencepiece import train as train_sentencepiece
    from test_unigram import train as train_unigram

    import rapidrag
    from rapidrag.beir import iter_jsonl

    shared = Path(args.shared)
    docs = [f"{d.get('title', '')} {d['text']}" for d in iter_jsonl(shared / "data/beir/scifact/corpus.jsonl.gz")]
    gcide = []
    for line in iter_jsonl(shared / "data/corpora/gcide/corpus.jsonl.gz"):
        gcide.append(f"{line.get('title', '')} {line['text']}")
        if len(gcide) == 2000:
            break
    texts = docs + gcide
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "texts": len(texts),
        "mb": mb,
        "rounds": args.rounds,
        "layouts": {},
    }
    try:
        import tokie
    except ImportError:
        tokie = None
    with tempfile.TemporaryDirectory() as tmp:
        for layout in LAYOUTS:
            path = Path(tmp) / f"{layout}.json"
            if layout.startswith("sentencepiece"):
                kind = layout.split("-")[1]
                model = train_sentencepiece(docs, kind, args.vocab, byte_fallback=kind == "bpe")
                path = convert_sentencepiece(model, kind, Path(tmp) / layout)
            elif layout.startswith("unigram"):
                train_unigram(docs, "xlmr", args.vocab).save(str(path))
            else:
                train(docs, layout, args.vocab).save(str(path))
            hf = tokenizers.Tokenizer.from_file(str(path))
            ours = rapidrag.Tokenizer.from_file(path, n_threads=1)
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
            hf_s, hf_out = best(lambda hf=hf: hf.encode_batch(texts, add_special_tokens=False), args.rounds)
            batch_s, batch = best(
                lambda ours=ours: ours.encode_batch(texts, padding=False, add_special_tokens=False, n_threads=1),
                args.rounds,
            )
            loop_s, _ = best(
                lambda ours=ours: [ours.encode(t, add_special_tokens=False, return_offsets=True) for t in texts],
                args.rounds,
            )
            expected = [e.ids for e in hf_out]
            mismatched = sum(row.tolist() != ids for row, ids in zip(batch.input_ids, expected, strict=True))
            entry: dict[str, Any] = {
                "hf_mb_s": mb / hf_s,
                "rapidrag_batch_mb_s": mb / batch_s,
                "rapidrag_loop_mb_s": mb / loop_s,
                "rapidrag_batch_x_hf": hf_s / batch_s,
                "rapidrag_loop_x_hf": hf_s / loop_s,
                "rapidrag_mismatched_texts": mismatched,
            }
            if tokie is not None:
                try:
                    tk = tokie.Tokenizer.from_json(str(path))
                    tokie_s, tokie_out = best(lambda tk=tk: [tk.encode(t) for t in texts], args.rounds)
                    ids = [list(getattr(e, "ids", e)) for e in tokie_out]
                    entry.update(
                        tokie_mb_s=mb / tokie_s,
                        rapidrag_loop_x_tokie=tokie_s / loop_s,
                        tokie_mismatched_texts=sum(a != b for a, b in zip(ids, expected, strict=True)),
                    )
                except Exception as e:  # tokie does not load every layout
                    entry["tokie"] = f"not run: {type(e).__name__}: {e}"[:200]
            report["layouts"][layout] = entry
            print(layout, json.dumps(entry), flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
