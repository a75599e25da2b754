"""Peak memory of one chunker on a corpus, measured in a process of its own (run by bench_chunker.py).

    python benchmarks/peak_memory.py LIBRARY --corpus corpus.jsonl.gz --model MODEL_DIR [--max-tokens 512]
                                     [--docs N] [--batched]

LIBRARY is one of _chunkers.SINGLE_THREAD (configured as in _chunkers.py). The script loads the first N passages
(0 = all), builds the chunker, then resets the kernel's peak-RSS mark (``/proc/self/clear_refs`` = 5, Linux) and
chunks every passage once, keeping all the chunks, as a batch call returns them. It prints one JSON line:
``peak_rss_mb`` (VmHWM while chunking), ``baseline_rss_mb`` (VmRSS just before), ``delta_rss_mb`` (their
difference: the memory chunking needed, result included), ``seconds`` and ``mb_per_s`` of the chunking call.
Where the peak cannot be reset, ``peak_method`` says so and the peak is the process's lifetime maximum.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _chunkers import SINGLE_THREAD, make
from _common import reset_peak, status_kb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("library", choices=SINGLE_THREAD)
    parser.add_argument("--corpus", required=True, help="BEIR corpus.jsonl[.gz]")
    parser.add_argument("--model", required=True, help="folder with tokenizer.json")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--docs", type=int, default=0, help="first N passages, 0 = all")
    parser.add_argument("--batched", action="store_true", help="the library's all-cores batch call")
    args = parser.parse_args()

    if not args.batched:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import tokenizers

    from rapidrag.beir import document_text, load_corpus

    texts = [document_text(d) for d in load_corpus(args.corpus)]
    if args.docs > 0:
        texts = texts[: args.docs]
    nbytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    hf = tokenizers.Tokenizer.from_file(str(Path(args.model) / "tokenizer.json"))
    hf.no_padding()
    hf.no_truncation()
    setup = make(args.library, args.max_tokens, hf, Path(args.model), batched=args.batched)
    if setup.setup is not None:
        setup.setup()

    gc.collect()
    reset = reset_peak()
    baseline_kb = status_kb("VmRSS") or 0
    start = time.perf_counter()
    out = setup.run(texts)
    seconds = time.perf_counter() - start
    peak_kb = status_kb("VmHWM") if reset else None
    method = "clear_refs+VmHWM"
    if peak_kb is None:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux; lifetime peak
        method = "ru_maxrss (lifetime peak, not reset)"
    chunks = sum(len(d.texts) for d in setup.normalize(out))
    print(
        json.dumps(
            {
                "library": args.library,
                "how": setup.how,
                "docs": len(texts),
                "bytes": nbytes,
                "max_tokens": args.max_tokens,
                "chunks": chunks,
                "baseline_rss_mb": round(baseline_kb / 1024, 1),
                "peak_rss_mb": round(peak_kb / 1024, 1),
                "delta_rss_mb": round((peak_kb - baseline_kb) / 1024, 1),
                "seconds": round(seconds, 3),
                "mb_per_s": round(nbytes / 1e6 / seconds, 3) if seconds > 0 else None,
                "peak_method": method,
            }
        )
    )


if __name__ == "__main__":
    main()
