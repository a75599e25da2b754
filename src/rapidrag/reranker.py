"""Cross-encoder reranking with ONNX Runtime on the native tokenizer, within a time budget.

Pairs ``[CLS] query [SEP] passage [SEP]`` are encoded unpadded, sorted by length and run in batches holding at most
``batch_tokens`` padded tokens, each padded only to its own longest pair. With a time budget the candidates are scored
in the order given instead, each batch no larger than what its estimated cost (the measured cost per token,
updated after every batch) lets fit in what is left, and a batch still running at the deadline is cancelled
(ONNX Runtime's ``RunOptions.terminate``) with its candidates left unscored: the budget is a hard deadline.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from ._onnx import CORES, WATCHDOG, GraphLevel, find_model_file, load_model, resolve_model
from .errors import ModelError
from .tokenizer import _check_texts, _check_threads

__all__ = ["RerankResult", "Reranked", "Reranker"]

F32Array = npt.NDArray[np.float32]
REQUIRED_INPUTS = ("input_ids", "attention_mask")  # token_type_ids too when the model takes them
MAX_POSITIONS = 512
# Head room on the cost estimate under a time budget: runs of the same shape vary by a few percent on a busy
# machine, and a budget is a limit, not a target. In end-to-end searches on SciFact (rapidrag bench, 300 queries)
# a factor of 1.1 gave p99 106.3 ms under a 100 ms budget and 501.7 under 500; 1.25 gave 99.1 and 499.5.
BUDGET_MARGIN = 1.25
# A run still going at the deadline is cancelled this much before it, at least: ONNX Runtime stops at the next
# node, which took up to about 3-7 ms past the flag on 4 x 256-token int8 batches here (once 11.9 ms under load).
# The lead a Reranker uses is the largest of this and how late its last CANCEL_HISTORY cancelled runs returned,
# so a model with long nodes, or a busier machine, cancels earlier (never more than CANCEL_LEAD_MAX_MS before).
CANCEL_LEAD_MS = 2.0
CANCEL_HISTORY = 16
CANCEL_LEAD_MAX_MS = 50.0
# Words too common to place a passage window: the window goes where the query's content words are.
_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from has have how in is it its of on or that the their these this "
    "those to was were what when which who why will with".split()
)


class Reranked(NamedTuple):
    """One candidate after reranking: the item as given, its rerank score (NaN if not scored) and its input index."""

    item: Any
    score: float
    input_index: int


@dataclass
class RerankResult(Sequence[Reranked]):
    """Candidates reordered: the scored ones by descending score, then the unscored in their original order."""

    items: list[Reranked]
    n_scored: int  # how many candidates were scored (all of them unless a time budget stopped it)
    n_candidates: int
    elapsed_ms: float  # tokenizing and scoring
    timings: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: Any) -> Any:
        return self.items[i]

    def __iter__(self) -> Iterator[Reranked]:
        return iter(self.items)

    @property
    def complete(self) -> bool:
        """True when every candidate was scored."""
        return self.n_scored == self.n_candidates


def _model_limit(folder: Path) -> int:
    """The model's own pair length: tokenizer_config.json's model_max_length, else config.json's positions."""
    limit = MAX_POSITIONS
    for name, key in (("config.json", "max_position_embeddings"), ("tokenizer_config.json", "model_max_length")):
        try:
            value = json.loads((folder / name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, int) and not isinstance(value, bool) and 4 <= value < limit:
            limit = value
    return limit


TRAINED_BY_RAPIDRAG = "rapidrag.json"  # what `rapidrag train` writes into a model folder


def _recommended_weight(folder: Path) -> float | None:
    """The fusion weight a model folder's ``rapidrag.json`` recommends (chosen on its dev split), if any."""
    path = folder / TRAINED_BY_RAPIDRAG
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("recommended_fusion_weight")
    except (OSError, ValueError, AttributeError) as e:
        raise ModelError(f"{path}: not a readable rapidrag.json ({e})") from None
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ModelError(f"{path}: recommended_fusion_weight must be a number in [0, 1], got {value!r}")
    return float(value)


def _passage_text(item: object, index: int) -> str:
    if isinstance(item, str):
        return item
    text = item.get("text") if isinstance(item, Mapping) else getattr(item, "text", None)
    if not isinstance(text, str):
        raise TypeError(f"hits[{index}] has no str text: pass str, a mapping with 'text' or an object with .text")
    return text


def _folder_activation(folder: Path) -> str:
    """The output activation the folder's config.json declares for sentence-transformers: sigmoid or none."""
    config = folder / "config.json"
    if not config.is_file():
        return "none"
    try:
        declared = json.loads(config.read_text(encoding="utf-8")).get("sbert_ce_default_activation_function")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise ModelError(f"{config}: not valid JSON ({e})") from None
    if declared is None or declared.endswith("Identity"):
        return "none"
    if declared.endswith("Sigmoid"):
        return "sigmoid"
    raise ModelError(f"{config}: output activation {declared!r} is not supported; supported: Sigmoid, Identity")


class Reranker:
    """Score (query, passage) pairs with a cross-encoder ONNX model (logits of shape [n], [n, 1] or [n, 2]).

    Parameters
    ----------
    path : str or path
        A model folder (``model.onnx`` or ``model_int8.onnx``, ``tokenizer.json`` or ``vocab.txt``, ``config.json``)
        or a name under ``RAPIDRAG_MODELS``.
    quantized : bool
        Load ``model_fused_int8.onnx`` (written by ``rapidrag quantize``) when the folder has it, else
        ``model_int8.onnx``.
    model_file : str or path, optional
        Another .onnx file, relative to the folder or absolute (for example one made by ``rapidrag.quantize``).
    max_length : int, optional
        Tokens per pair, special tokens included; only the passage is truncated. None: the model's own limit
        (``model_max_length`` in tokenizer_config.json, else ``max_position_embeddings``), at most 512.
    batch_tokens : int
        Pairs per ONNX Runtime run are chosen so that a padded batch holds at most this many tokens (at least one
        pair). 1024 measured best overall here: fp32 models gain from larger batches (2048 was 5% faster than 512),
        int8 ones lose a little (512 was up to 8% faster than 2048) (benchmarks/bench_reranker.py).
    n_threads, graph_optimization_level, enable_mem_arena, allow_spinning, spin_between_runs :
        ONNX Runtime session settings, as for the Embedder.
    activation : "auto", "none" or "sigmoid"
        Applied to the logit. "auto": what the folder's ``config.json`` declares for sentence-transformers
        (``sbert_ce_default_activation_function``), else none. Models without ``token_type_ids`` (RoBERTa,
        ModernBERT and decoder rerankers) get the inputs they declare.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        quantized: bool = False,
        model_file: str | os.PathLike[str] | None = None,
        max_length: int | None = None,
        batch_tokens: int = 1024,
        n_threads: int = 0,
        graph_optimization_level: GraphLevel = "all",
        enable_mem_arena: bool = True,
        allow_spinning: bool = True,
        spin_between_runs: bool = True,
        activation: Literal["auto", "none", "sigmoid"] = "auto",
    ) -> None:
        folder = resolve_model(path)
        onnx_file = find_model_file(folder, quantized, model_file)
        if activation not in ("auto", "none", "sigmoid"):
            raise ValueError(f"activation must be 'auto', 'none' or 'sigmoid', got {activation!r}")
        self.activation = _folder_activation(folder) if activation == "auto" else activation
        self.model_limit = _model_limit(folder)
        self.max_length = self._check_length(max_length, "max_length")
        if not isinstance(batch_tokens, int) or isinstance(batch_tokens, bool) or batch_tokens < 1:
            raise ValueError(f"batch_tokens must be a positive int, got {batch_tokens!r}")
        self.batch_tokens = batch_tokens
        self.n_threads = _check_threads(n_threads, 0)
        self.folder, self.model_path = folder, onnx_file  # remembered by a saved index
        self.tokenizer, self.session, self._input_names = load_model(
            folder,
            onnx_file,
            required_inputs=REQUIRED_INPUTS,
            n_threads=self.n_threads,
            graph_optimization_level=graph_optimization_level,
            enable_mem_arena=enable_mem_arena,
            allow_spinning=allow_spinning,
            spin_between_runs=spin_between_runs,
        )
        self._output = self.session.get_outputs()[0].name
        self._pad_id = self.tokenizer.pad_id
        self.recommended_weight = _recommended_weight(folder)
        self._query_cache: tuple[str, frozenset[int]] | None = None
        # Warm up on the largest batch a search runs (full-length pairs filling batch_tokens), which also checks
        # the output shape and has ONNX Runtime allocate for that shape now, and seed the cost model with its
        # measured time per token. A full-length batch costs the most per token (attention grows with the
        # square of the length), so the first budgeted search starts from an estimate on the safe side.
        self._ms_per_token = 0.0
        self._cancel_late_ms: deque[float] = deque(maxlen=CANCEL_HISTORY)
        pairs = max(1, self.batch_tokens // self.max_length)
        warm = ["relevance " * self.max_length] * pairs
        self.score("warm-up query", warm)
        start = time.perf_counter()
        self.score("warm-up query", warm)
        self._ms_per_token = (time.perf_counter() - start) * 1000.0 / (pairs * self.max_length)
        # And one run of that batch cancelled a millisecond in, so that the cancel lead starts from how late this
        # model returns from a cancel on this machine rather than from the fixed CANCEL_LEAD_MS (a fresh process's
        # first budgeted search ran 1.3 ms over its 100 ms budget without it).
        enc = self.tokenizer.encode_pairs("warm-up query", warm, max_length=self.max_length, padding=False)
        self._run_until(enc, np.arange(pairs), time.perf_counter() + 0.001)

    def _check_length(self, value: int | None, name: str) -> int:
        if value is None:
            return getattr(self, "max_length", self.model_limit)
        if not isinstance(value, int) or isinstance(value, bool) or not 4 <= value <= self.model_limit:
            raise ValueError(f"{name} must be an int from 4 to {self.model_limit} (the model's limit), got {value!r}")
        return value

    # -- public API --------------------------------------------------------------------------------------------

    def score(
        self,
        query: str,
        passages: Sequence[str],
        *,
        max_length: int | None = None,
        window: int | None = None,
        budget_ms: float | None = None,
    ) -> F32Array:
        """Relevance of each passage to ``query``: float32 [n], higher is more relevant.

        ``max_length`` overrides the pair length for this call. ``window``: a passage longer than ``window``
        tokens is scored on the ``window`` tokens around its densest run of query words (whole words, cut
        at the tokenizer's offsets) instead of its beginning. With ``budget_ms`` the passages are scored in
        the order given and the rest are NaN once the budget would be overrun.
        """
        scores, _, _ = self._score(query, passages, max_length, window, budget_ms)
        return scores

    def rerank(
        self,
        query: str,
        hits: Sequence[Any],
        *,
        top_k: int | None = None,
        max_length: int | None = None,
        window: int | None = None,
        budget_ms: float | None = None,
    ) -> RerankResult:
        """``hits`` reordered by rerank score, each as ``Reranked(item, score, input_index)``.

        A hit is a str, a mapping with a "text" key, or an object with a ``text`` attribute. Under a time budget
        the candidates are scored in the order given (best first-stage candidates first); those left unscored
        keep their order after the scored ones, with a NaN score, and ``n_scored`` says how many were scored.
        An empty or blank passage is not run through the model (its score for no text means nothing): it scores
        -inf, last of the scored. ``top_k`` keeps the first ``top_k`` of the result.
        """
        start = time.perf_counter()
        items = list(hits)
        passages = [_passage_text(item, i) for i, item in enumerate(items)]
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0):
            raise ValueError(f"top_k must be an int >= 0 or None, got {top_k!r}")
        kept = [i for i, text in enumerate(passages) if text.strip()]
        scores = np.full(len(passages), -np.inf, dtype=np.float32)
        some, n_scored, timings = self._score(query, [passages[i] for i in kept], max_length, window, budget_ms)
        scores[kept] = some
        n_scored += len(passages) - len(kept)
        scored = np.flatnonzero(~np.isnan(scores))
        rest = np.flatnonzero(np.isnan(scores))
        order = np.concatenate([scored[np.argsort(-scores[scored], kind="stable")], rest])
        if top_k is not None:
            order = order[:top_k]
        ranked = [Reranked(items[i], float(scores[i]), int(i)) for i in order]
        elapsed = (time.perf_counter() - start) * 1000.0
        return RerankResult(ranked, n_scored, len(items), elapsed, timings)

    # -- internals ---------------------------------------------------------------------------------------------

    def _score(
        self,
        query: str,
        passages: Sequence[str],
        max_length: int | None,
        window: int | None,
        budget_ms: float | None,
    ) -> tuple[F32Array, int, dict[str, float]]:
        start = time.perf_counter()
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        items = _check_texts(passages, "passages")
        limit = self._check_length(max_length, "max_length")
        if budget_ms is not None and (
            not isinstance(budget_ms, (int, float)) or isinstance(budget_ms, bool) or not budget_ms > 0
        ):
            raise ValueError(f"budget_ms must be a number > 0 or None, got {budget_ms!r}")
        if window is not None:
            if not isinstance(window, int) or isinstance(window, bool) or window < 1:
                raise ValueError(f"window must be a positive int or None, got {window!r}")
            items = self._windows(query, items, window)
        scores = np.full(len(items), np.nan, dtype=np.float32)
        if not items:
            return scores, 0, {"tokenize_ms": 0.0, "model_ms": 0.0}
        enc = self.tokenizer.encode_pairs(query, items, max_length=limit, padding=False)
        lengths = enc.lengths
        tokenized = time.perf_counter()
        if budget_ms is None:
            order = np.argsort(lengths, kind="stable")  # length buckets: each batch pads to its own longest
        else:
            order = np.arange(len(items))  # the caller's order: best candidates first
        n_scored = 0
        pos = 0
        deadline = None if budget_ms is None else start + budget_ms / 1000.0
        while pos < len(order):
            count = self._batch_count(lengths, order, pos)
            if budget_ms is not None:
                count = self._fit(lengths, order[pos : pos + count], start, budget_ms)
                if count == 0:
                    break
            # Other threads' model runs may hold the cores: wait for them no longer than the budget, then size
            # the batch again by what is left (the cost model counts the run alone, not the wait).
            with CORES.use(self.n_threads, deadline) as granted:
                if budget_ms is not None:
                    count = self._fit(lengths, order[pos : pos + count], start, budget_ms) if granted else 0
                    if count == 0:
                        break
                idx = order[pos : pos + count]
                run_start = time.perf_counter()
                if deadline is None:
                    scores[idx] = self._run(enc, idx)
                else:
                    batch = self._run_until(enc, idx, deadline - self._cancel_lead_ms() / 1000.0)
                    if batch is None:
                        break  # cancelled at the deadline: these candidates stay unscored
                    scores[idx] = batch
                self._update_cost(lengths, idx, (time.perf_counter() - run_start) * 1000.0)
            pos += count
            n_scored += count
        done = time.perf_counter()
        timings = {"tokenize_ms": (tokenized - start) * 1000.0, "model_ms": (done - tokenized) * 1000.0}
        return scores, n_scored, timings

    def _batch_count(self, lengths: npt.NDArray[np.int64], order: npt.NDArray[np.intp], pos: int) -> int:
        """How many pairs from ``pos`` form the next batch: padded tokens within ``batch_tokens``, at least one."""
        count, longest = 1, int(lengths[order[pos]])
        while pos + count < len(order):
            longest_next = max(longest, int(lengths[order[pos + count]]))
            if (count + 1) * longest_next > self.batch_tokens:
                break
            count, longest = count + 1, longest_next
        return count

    def _fit(self, lengths: npt.NDArray[np.int64], batch: npt.NDArray[np.intp], start: float, budget_ms: float) -> int:
        """How many of ``batch`` (in order) can run in what is left of ``budget_ms`` since ``start``."""
        spent = (time.perf_counter() - start) * 1000.0
        count = len(batch)
        while count and spent + self._estimate(lengths, batch[:count]) > budget_ms:
            count -= 1
        return count

    def _estimate(self, lengths: npt.NDArray[np.int64], idx: npt.NDArray[np.intp]) -> float:
        return BUDGET_MARGIN * self._ms_per_token * len(idx) * int(lengths[idx].max())

    def _update_cost(self, lengths: npt.NDArray[np.int64], idx: npt.NDArray[np.intp], ms: float) -> None:
        measured = ms / (len(idx) * int(lengths[idx].max()))
        # Weighted toward the latest batch, so that a slower machine state is picked up within a query.
        self._ms_per_token = measured if self._ms_per_token == 0.0 else 0.5 * self._ms_per_token + 0.5 * measured

    def _cancel_lead_ms(self) -> float:
        """How long before a budget's deadline a run still going is cancelled (see ``CANCEL_LEAD_MS``)."""
        late = max(self._cancel_late_ms, default=0.0)
        return min(max(CANCEL_LEAD_MS, late), CANCEL_LEAD_MAX_MS)

    def _run_until(self, enc: Any, idx: npt.NDArray[np.intp], when: float) -> F32Array | None:
        """``_run``, cancelled if still running at ``when`` (a ``time.perf_counter()`` value): None then, and how
        late past ``when`` the run returned is kept for the next leads."""
        import onnxruntime as ort  # type: ignore[import-untyped]

        options = ort.RunOptions()
        with WATCHDOG.deadline(options, when):
            try:
                return self._run(enc, idx, options)
            except Exception:
                if options.terminate:  # ours: ONNX Runtime left the run at the flag
                    self._cancel_late_ms.append(max(0.0, (time.perf_counter() - when) * 1000.0))
                    return None
                raise

    def _run(self, enc: Any, idx: npt.NDArray[np.intp], run_options: Any = None) -> F32Array:
        width = int(enc.lengths[idx].max())
        arrays = {
            name: np.full((len(idx), width), self._pad_id if name == "input_ids" else 0, dtype=np.int64)
            for name in self._input_names
        }
        types = "token_type_ids" in arrays
        for row, i in enumerate(idx):
            n = int(enc.lengths[i])
            arrays["input_ids"][row, :n] = enc.input_ids[i]
            arrays["attention_mask"][row, :n] = 1
            if types:
                arrays["token_type_ids"][row, :n] = enc.token_type_ids[i]
        (logits,) = self.session.run([self._output], arrays, run_options)
        logits = np.asarray(logits, dtype=np.float32)
        if logits.ndim == 1:
            logits = logits[:, None]
        if logits.ndim != 2 or logits.shape[0] != len(idx) or logits.shape[1] not in (1, 2):
            raise ModelError(
                f"{self.model_path}: output {self._output!r} has shape {list(logits.shape)}; a cross-encoder gives "
                "[batch, 1] or [batch, 2] logits"
            )
        scores = logits[:, -1]  # one logit, or the "relevant" column of two
        if self.activation == "sigmoid":
            scores = 1.0 / (1.0 + np.exp(-scores))
        return scores

    def _query_terms(self, query: str) -> frozenset[int]:
        if self._query_cache is not None and self._query_cache[0] == query:
            return self._query_cache[1]
        ids, offsets = self.tokenizer.encode(query, add_special_tokens=False, return_offsets=True)
        terms = set()
        for token, (s, e) in zip(ids.tolist(), offsets.tolist(), strict=True):
            piece = query[s:e].lower()
            if len(piece) >= 2 and piece.isalnum() and piece not in _STOPWORDS:
                terms.add(int(token))
        result = frozenset(terms)
        self._query_cache = (query, result)
        return result

    def _windows(self, query: str, passages: list[str], window: int) -> list[str]:
        """Each passage longer than ``window`` tokens cut to the window with the most query-term tokens."""
        enc = self.tokenizer.encode_batch(passages, add_special_tokens=False, padding=False, truncation=False)
        terms = np.fromiter(self._query_terms(query), dtype=np.int64)
        out = list(passages)
        for i, n in enumerate(enc.lengths.tolist()):
            if n <= window:
                continue
            ids = enc.input_ids[i]
            offsets = enc.offsets[i]
            hits = np.concatenate([[0], np.cumsum(np.isin(ids, terms))])
            counts = hits[window:] - hits[: n - window + 1]
            best = np.flatnonzero(counts == counts.max())
            start = int(best[len(best) // 2])  # the middle one of the best windows: matches centred
            text = passages[i]
            # Start and end on whole words: back up while the first token continues a word.
            while start > 0 and offsets[start][0] == offsets[start - 1][1] and text[offsets[start][0]].isalnum():
                start -= 1
            end = min(start + window, n)
            while end < n and end > start + 1 and offsets[end][0] == offsets[end - 1][1]:
                end -= 1
            out[i] = text[int(offsets[start][0]) : int(offsets[end - 1][1])]
        return out

    def __repr__(self) -> str:
        return f"Reranker({self.model_path.name}, max_length={self.max_length}, batch_tokens={self.batch_tokens})"
