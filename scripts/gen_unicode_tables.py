"""Generate cpp/src/unicode_tables.inc: the Unicode properties the BERT normalizer and pre-tokenizer need.

Every property comes from Python's ``unicodedata``: general categories (control, format, private use,
surrogate, nonspacing mark, punctuation), the White_Space set, canonical decompositions with their combining
classes (NFD, Hangul syllables excepted: the core decomposes those arithmetically), compatibility decompositions
(NFKD, for NFKC), and per-character lowercasing.

Hugging Face ``tokenizers`` classifies characters with tables from an older Unicode version than the
``unicodedata`` of current Pythons (a few hundred marks and punctuation signs assigned since are plain letters
to it), and lowercases with Rust's newer tables. When ``tokenizers`` is installed (``--reference hf``, the
default), the script asks it how it treats each code point on its own and records the code points where it
differs, so that rapidrag gives the same ids as the reference implementation everywhere. The count of such
overrides is printed; ``--reference none`` writes the plain ``unicodedata`` tables.

Run: python scripts/gen_unicode_tables.py [--reference hf|none] [--out cpp/src/unicode_tables.inc]
"""

from __future__ import annotations

import argparse
import sys
import unicodedata as ud
from pathlib import Path

# Flag bits; keep in sync with cpp/include/rapidrag/unicode.hpp.
REMOVE = 1  # dropped by text cleaning (control, format, private use, surrogate, NUL, U+FFFD)
SPACE = 2  # White_Space: becomes ' ' in cleaning, separates words
PUNCT = 4  # a word of its own in pre-tokenization
MARK = 8  # nonspacing mark: dropped when stripping accents
PY_SPACE = 16  # str.isspace(): what the chunker may leave outside its chunks
WORD = 32  # Python's regex \w (str.isalnum() or '_'): the characters of a BM25 word

MAX_CP = 0x110000
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3
WHITE_SPACE_EXTRA = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029}


def base_flags(cp: int) -> int:
    ch = chr(cp)
    cat = ud.category(ch)
    flags = 0
    if cp in (0x09, 0x0A, 0x0D):
        flags |= SPACE
    elif cp == 0 or cp == 0xFFFD or cat in ("Cc", "Cf", "Co", "Cs"):
        flags |= REMOVE
    if cp in WHITE_SPACE_EXTRA or cat == "Zs":
        flags |= SPACE
    if (33 <= cp <= 126 and not ch.isalnum()) or cat.startswith("P"):
        flags |= PUNCT
    if cat == "Mn":
        flags |= MARK
    if ch.isspace():
        flags |= PY_SPACE
    if ch.isalnum() or ch == "_":
        flags |= WORD
    return flags


def full_decomposition(cp: int) -> list[int]:
    if HANGUL_FIRST <= cp <= HANGUL_LAST:
        return [cp]
    return [ord(c) for c in ud.normalize("NFD", chr(cp))]


def compat_decomposition(cp: int) -> list[int]:
    """NFKD of one code point (Hangul syllables excepted), for NFKC."""
    if HANGUL_FIRST <= cp <= HANGUL_LAST:
        return [cp]
    return [ord(c) for c in ud.normalize("NFKD", chr(cp))]


def lower(cp: int) -> list[int]:
    return [ord(c) for c in chr(cp).lower()]


def hf_overrides(
    flags: list[int], decomp: list[list[int]], lowers: list[list[int]], ccc: list[int], compat: list[list[int]]
) -> int:
    """Align the tables with how ``tokenizers`` treats each code point alone; return the count changed."""
    from tokenizers import normalizers, pre_tokenizers

    nfkd = normalizers.NFKD()

    clean = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False
    )
    strip = normalizers.BertNormalizer(
        clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False
    )
    low = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    nfd = normalizers.NFD()
    changed = 0
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF or HANGUL_FIRST <= cp <= HANGUL_LAST:
            continue
        ch = chr(cp)
        f = flags[cp]
        new = f & ~(REMOVE | SPACE | PUNCT)  # MARK, PY_SPACE and WORD carry over
        cleaned = clean.normalize_str(ch)
        if cleaned == "":
            new |= REMOVE
        elif cleaned == " " and cp != 0x20:
            new |= SPACE
        if cp == 0x20:
            new |= SPACE
        words = [w for w, _ in pre.pre_tokenize_str("a" + ch + "b")]
        if words == ["a", ch, "b"]:
            new |= PUNCT
        elif words == ["a", "b"]:
            new |= SPACE
        # The pre-tokenizer sees normalized text, where cleaning already made every space ' '.
        if (f & SPACE) and not (new & SPACE) and cleaned == " ":
            new |= SPACE
        ours = [c for c in decomp[cp] if not (flags[c] & MARK)]
        theirs = [ord(c) for c in strip.normalize_str(ch)]
        if ours != theirs:
            # Keep what the reference keeps: an undecomposed character, or one whose mark it does not know.
            decomp[cp] = theirs if theirs else [cp]
            if theirs:
                new &= ~MARK
            else:
                new |= MARK
        theirs_compat = [ord(c) for c in nfkd.normalize_str(ch)]
        if theirs_compat != compat[cp]:
            compat[cp] = theirs_compat
            changed += 1
        theirs_low = [ord(c) for c in low.normalize_str(ch)]
        if theirs_low != lowers[cp]:
            lowers[cp] = theirs_low
            changed += 1
        # A combining class the reference does not know (a mark encoded after its tables) is 0 to it: the mark
        # is a starter and nothing is reordered around it. U+0345 has the highest class, 240.
        if 0 < ccc[cp] < 240 and nfd.normalize_str("a\u0345" + ch)[1] == "\u0345":
            ccc[cp] = 0
            changed += 1
        if new != f or ours != theirs:
            changed += 1
        flags[cp] = new
    return changed


def two_stage(per_cp: list[int]) -> tuple[list[int], list[tuple[int, ...]]]:
    """A value per code point as a two-stage table: the block of each 256 code points, and the distinct blocks."""
    block_index: dict[tuple[int, ...], int] = {}
    blocks: list[tuple[int, ...]] = []
    stage1: list[int] = []
    for hi in range(MAX_CP >> 8):
        block = tuple(per_cp[hi << 8 : (hi + 1) << 8])
        if block not in block_index:
            block_index[block] = len(blocks)
            blocks.append(block)
        stage1.append(block_index[block])
    return stage1, blocks


def write_two_stage(path: str, namespace: str, header: str, per_cp: list[int]) -> None:
    """Writes ``per_cp`` (one byte per code point) as the two-stage tables kStage1/kStage2 of ``namespace``."""
    stage1, blocks = two_stage(per_cp)
    out = [
        header,
        f"namespace {namespace} {{",
        "const uint16_t kStage1[] = {",
        rows(stage1, 32),
        "};",
        "const uint8_t kStage2[] = {",
        rows([v for b in blocks for v in b], 32),
        "};",
        f"}}  // namespace {namespace}",
        "",
    ]
    Path(path).write_text("\n".join(out))
    print(f"wrote {path}: {len(blocks)} blocks")


def rows(values: list[int], width: int = 16) -> str:
    """C initializer rows."""
    return "\n".join(
        "    " + ", ".join(str(v) for v in values[i : i + width]) + "," for i in range(0, len(values), width)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", choices=("hf", "none"), default="hf")
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parents[1] / "cpp" / "src" / "unicode_tables.inc")
    )
    args = parser.parse_args()

    flags = [0] * MAX_CP
    decomp: list[list[int]] = [[]] * MAX_CP
    lowers: list[list[int]] = [[]] * MAX_CP
    compat: list[list[int]] = [[]] * MAX_CP
    ccc = [0] * MAX_CP
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF:
            flags[cp] = REMOVE
            decomp[cp] = [cp]
            lowers[cp] = [cp]
            compat[cp] = [cp]
            continue
        flags[cp] = base_flags(cp)
        decomp[cp] = full_decomposition(cp)
        compat[cp] = compat_decomposition(cp)
        lowers[cp] = lower(cp)
        ccc[cp] = ud.combining(chr(cp))
    changed = 0
    if args.reference == "hf":
        changed = hf_overrides(flags, decomp, lowers, ccc, compat)

    # Records: (flags, ccc, decomposition, lowercase); code points that map to themselves store empty lists.
    pool: list[int] = []
    pool_index: dict[tuple[int, ...], int] = {}

    def intern(seq: list[int], cp: int) -> tuple[int, int]:
        if seq == [cp]:
            return (0xFFFF, 0)
        key = tuple(seq)
        if key not in pool_index:
            pool_index[key] = len(pool)
            pool.extend(seq)
        return (pool_index[key], len(seq))

    records: list[tuple[int, ...]] = []
    record_index: dict[tuple[int, ...], int] = {}
    per_cp = [0] * MAX_CP
    for cp in range(MAX_CP):
        d_off, d_len = intern(decomp[cp], cp)
        l_off, l_len = intern(lowers[cp], cp)
        k_off, k_len = intern(compat[cp], cp)
        rec = (flags[cp], ccc[cp], d_off, d_len, l_off, l_len, k_off, k_len)
        if rec not in record_index:
            record_index[rec] = len(records)
            records.append(rec)
        per_cp[cp] = record_index[rec]
    if len(records) >= 0xFFFF or len(pool) >= 0xFFFF:
        sys.exit("table too large for 16-bit indices")

    stage1, blocks = two_stage(per_cp)

    out = [
        "// Generated by scripts/gen_unicode_tables.py from Python's unicodedata "
        f"(Unicode {ud.unidata_version}); do not edit.",
        f"// Reference overrides: {args.reference} ({changed} code points aligned with the reference tokenizer).",
        "namespace rapidrag::unicode::data {",
        f"constexpr unsigned kNumBlocks = {len(blocks)};",
        "const uint16_t kStage1[] = {",
        rows(stage1),
        "};",
        "const uint16_t kStage2[] = {",
        rows([v for b in blocks for v in b]),
        "};",
        "// flags, ccc, decomposition, lowercase, compatibility decomposition: offset, length (0xFFFF: itself)",
        "const Record kRecords[] = {",
        "\n".join("    {" + ", ".join(str(v) for v in r) + "}," for r in records),
        "};",
        "const char32_t kPool[] = {",
        rows(pool) if pool else "    0,",
        "};",
        "}  // namespace rapidrag::unicode::data",
        "",
    ]
    Path(args.out).write_text("\n".join(out))
    print(f"wrote {args.out}: {len(records)} records, {len(blocks)} blocks, pool {len(pool)}, {changed} overrides")


if __name__ == "__main__":
    main()
