"""The ``rapidrag`` command line.

``rapidrag chunk``: tokenize and chunk a corpus, with a throughput report.
``rapidrag quantize``: make an int8 model (attention fused) from an fp32 ONNX model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import RapidragError

DEFAULT_TOKENIZER = "all-MiniLM-L6-v2"
TEXT_SUFFIXES = {".txt", ".md"}


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _resolve_tokenizer(arg: str | None) -> Path:
    if arg:
        path = Path(arg)
        if not path.exists():
            raise CliError(f"tokenizer not found: {path}")
        return path
    models = os.environ.get("RAPIDRAG_MODELS")
    if models and (Path(models) / DEFAULT_TOKENIZER).is_dir():
        return Path(models) / DEFAULT_TOKENIZER
    looked = f"{Path(models) / DEFAULT_TOKENIZER}" if models else "RAPIDRAG_MODELS (not set)"
    raise CliError(
        f"no tokenizer: looked in {looked}; pass --tokenizer PATH (a vocab.txt, tokenizer.json or model folder) "
        "or set RAPIDRAG_MODELS to a folder holding all-MiniLM-L6-v2/"
    )


def _documents(src: Path) -> Iterator[tuple[str, str]]:
    """(id, text) pairs from a BEIR corpus.jsonl[.gz] or a folder of .txt/.md files."""
    from .beir import document_text, iter_jsonl

    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.suffix in TEXT_SUFFIXES and p.is_file())
        if not files:
            raise CliError(f"no .txt or .md files in {src}")
        for p in files:
            try:
                yield str(p.relative_to(src)), p.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                print(f"warning: skipped {p}: not UTF-8 text", file=sys.stderr)
        return
    if not src.is_file():
        raise CliError(f"no such file or folder: {src}")
    if not (src.name.endswith(".jsonl") or src.name.endswith(".jsonl.gz")):
        raise CliError(f"{src}: expected a corpus.jsonl[.gz] or a folder of .txt/.md files")
    for i, doc in enumerate(iter_jsonl(src)):
        yield str(doc.get("_id", i)), document_text(doc)


def cmd_chunk(args: argparse.Namespace) -> int:
    from .chunker import Chunker
    from .tokenizer import Tokenizer

    if not Path(args.src).exists():
        raise CliError(f"no such file or folder: {args.src}")
    tok = Tokenizer.from_file(_resolve_tokenizer(args.tokenizer), n_threads=args.threads)
    chunker = Chunker(tok, max_tokens=args.max_tokens, overlap=args.overlap)
    t_load = time.perf_counter()
    docs = list(_documents(Path(args.src)))
    load_s = time.perf_counter() - t_load
    ids = [d[0] for d in docs]
    texts = [d[1] for d in docs]
    n_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)

    t0 = time.perf_counter()
    counts = tok.count_tokens(texts)
    tokenize_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    chunks = chunker.split_batch(texts)
    chunk_s = time.perf_counter() - t0

    n_chunks = sum(len(c) for c in chunks)
    n_tokens = int(counts.sum())
    chunk_tokens = [c.n_tokens for cs in chunks for c in cs]
    mb = n_bytes / 1e6
    print(f"source      {args.src}")
    print(f"tokenizer   {tok!r}")
    print(f"documents   {len(texts):,}  ({mb:.1f} MB of UTF-8, read in {load_s:.2f} s)")
    print(
        f"tokens      {n_tokens:,}  tokenized in {tokenize_s:.3f} s: {mb / tokenize_s:.1f} MB/s, "
        f"{n_tokens / tokenize_s / 1e6:.2f} M tokens/s"
    )
    print(
        f"chunks      {n_chunks:,}  (max_tokens {args.max_tokens}, overlap {args.overlap}; "
        f"largest {max(chunk_tokens, default=0)}, mean {sum(chunk_tokens) / max(n_chunks, 1):.0f} tokens)"
    )
    print(f"chunking    {chunk_s:.3f} s: {mb / chunk_s:.1f} MB/s  (threads: {args.threads or os.cpu_count()})")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            for doc_id, cs in zip(ids, chunks, strict=True):
                for k, c in enumerate(cs):
                    row = {
                        "doc_id": doc_id,
                        "chunk": k,
                        "start": c.start,
                        "end": c.end,
                        "n_tokens": c.n_tokens,
                        "text": c.text,
                    }
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"wrote       {args.out}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from ._onnx import resolve_model
    from .quantization import fuse_attention, quantize

    src = Path(args.src)
    folder = src if src.suffix == ".onnx" else resolve_model(src)
    if args.fp32 and args.no_fuse:
        raise CliError("--fp32 with --no-fuse would only copy the model")
    default_name = "model_fused.onnx" if args.fp32 else "model_fused_int8.onnx"
    out = Path(args.out) if args.out else (folder.parent if folder.suffix == ".onnx" else folder) / default_name
    start = time.perf_counter()
    if args.fp32:
        report = fuse_attention(folder, out)
        weights = "fp32 weights (same outputs)"
    else:
        report = quantize(folder, out, fuse=not args.no_fuse, per_channel=not args.per_tensor)
        weights = f"int8 weights ({'per tensor' if args.per_tensor else 'per channel'})"
    print(
        f"wrote {report.path} in {time.perf_counter() - start:.1f} s: "
        f"{report.attention_fused} of {report.attention_blocks} attention blocks fused, {weights}"
    )
    print(f"load it with: Reranker(folder, model_file={out.name!r}) or Embedder(folder, model_file={out.name!r})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rapidrag", description="rapidrag: fast retrieval for RAG")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("chunk", help="tokenize and chunk a corpus and report throughput")
    p.add_argument("src", help="a BEIR corpus.jsonl[.gz] or a folder of .txt/.md files")
    p.add_argument(
        "--tokenizer", help=f"vocab.txt, tokenizer.json or model folder (default: $RAPIDRAG_MODELS/{DEFAULT_TOKENIZER})"
    )
    p.add_argument("--max-tokens", type=int, default=256, help="chunk size in tokens (default 256)")
    p.add_argument("--overlap", type=int, default=0, help="tokens shared by consecutive chunks (default 0)")
    p.add_argument("--threads", type=int, default=0, help="threads, 0 = one per core (default)")
    p.add_argument("--out", help="write the chunks to this .jsonl file")
    p.set_defaults(func=cmd_chunk)
    q = sub.add_parser("quantize", help="make an int8 model with fused attention from an fp32 ONNX model")
    q.add_argument(
        "src", help="a model folder holding model.onnx, a model name under $RAPIDRAG_MODELS, or a .onnx file"
    )
    q.add_argument("--out", help="the int8 .onnx file to write (default: model_fused_int8.onnx beside the source)")
    q.add_argument("--no-fuse", action="store_true", help="quantize without fusing the attention blocks")
    q.add_argument("--fp32", action="store_true", help="only fuse the attention blocks; keep fp32 weights")
    q.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor instead of per channel")
    q.set_defaults(func=cmd_quantize)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, RapidragError, OSError, ValueError, TypeError) as e:
        print(f"rapidrag: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
