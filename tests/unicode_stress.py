"""Deterministic Unicode stress strings for tokenizer and chunker tests.

``stress_texts()`` is the parity set: a few thousand strings without lone surrogates (the reference, Hugging Face
``tokenizers``, cannot take them). ``surrogate_texts()`` holds strings with lone surrogates, for rapidrag-only
tests. Both come from a fixed seed and a plain ``random.Random``, so every run and every machine sees the same
strings. Run ``python tests/unicode_stress.py`` for a summary.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable, Sequence
from functools import cache

__all__ = ["SEED", "SPECIAL_TOKENS", "stress_texts", "surrogate_texts", "stress_kinds", "replace_surrogates"]

SEED = 20240611
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[UNK]", "[MASK]", "[PAD]")


def _rng(lo: int, hi: int) -> list[str]:
    """Assigned-or-not characters lo..hi inclusive, as a list (lists keep the order deterministic)."""
    return [chr(c) for c in range(lo, hi + 1)]


# ---------------------------------------------------------------- character pools

LATIN_PRECOMPOSED = list(
    "àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞ"
    "ĀāĂăĄąĆćĈĉĊċČčĎďĐđĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĦħĨĩĪīĬĭĮįİıĲĳĴĵĶķĸĹĺĻļĽľĿŀŁł"
    "ŃńŅņŇňŉŊŋŌōŎŏŐőŒœŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŦŧŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽž"
    "ǄǅǆǇǈǉǊǋǌǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǢǣǦǧǨǩǪǫǬǭǰǱǲǳǴǵǸǹǺǻǼǽǾǿ"
    "ḀḁḂḃḈḉḔḕṤṥẞẠạẢảẤấẦầỆệỲỳỸỹ"
)
COMBINING = (
    _rng(0x0300, 0x036F) + _rng(0x1AB0, 0x1ABE) + _rng(0x1DC0, 0x1DFF) + _rng(0x20D0, 0x20F0) + _rng(0xFE20, 0xFE2F)
)
ENCLOSING = ["\u20dd", "\u20de", "\u20df", "\u20e0", "\u20e2", "\u20e3", "\u20e4"]
SPACING_MARKS = ["\u0903", "\u093e", "\u0940", "\u09be", "\u0bbe", "\u0f7f"]  # Mc: not stripped as accents
LATIN = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
WORDS = (
    "the of and to in is was for on that with as by at from this are be or an it which not have been has "
    "protein cell gene expression patients study results cancer treatment mice increased associated "
    "receptor activity levels disease analysis clinical response effect human virus infection immune "
    "unbelievable tokenization internationalization antidisestablishmentarianism pneumonoultramicroscopic"
).split()
GREEK = _rng(0x0391, 0x03A1) + _rng(0x03A3, 0x03A9) + _rng(0x03B1, 0x03C9) + list("ΆΈΉΊΌΎΏάέήίόύώϊϋΐΰϐϑϕϖϰϱϲϳϴϵ")
GREEK_POLYTONIC = _rng(0x1F00, 0x1F15) + _rng(0x1F18, 0x1F1D) + _rng(0x1F80, 0x1FAF) + list("ᾼῌῼ")
CYRILLIC = _rng(0x0400, 0x045F) + list("ҐґЄєІіЇїЎўӁӂӐӑ")
CASE_SPECIALS = [
    "ς",
    "Σ",
    "σ",
    "İ",
    "ı",
    "I",
    "i",
    "ß",
    "ẞ",
    "ﬀ",
    "ﬁ",
    "ﬂ",
    "ﬃ",
    "ﬄ",
    "ﬅ",
    "ﬆ",
    "ﬓ",
    "ﬔ",
    "Ǆ",
    "ǅ",
    "ǆ",
    "Ĳ",
    "ĳ",
    "Œ",
    "œ",
    "Æ",
    "æ",
    "ŉ",
    "ǰ",
    "K",
    "Ω",
    "Å",
    "ϴ",
    "ᾈ",
    "ᾼ",
    "ῼ",
    "Ꙋ",
    "Ᲊ",
    "ᏸ",
    "ꭰ",
    "Ꭰ",
    "𐐀",
    "𐐨",
    "𞤀",
    "𞤢",
    "𑢠",
    "Ⴀ",
    "ⴀ",
    "Ა",
    "ა",
    "ǈ",
    "ϓ",
    "ϔ",
    "Ⅻ",
    "ⅻ",
    "Ⓐ",
    "ⓐ",
    "Ａ",
    "ａ",
]
CASE_WORDS = [
    "ΣΊΣΥΦΟΣ",
    "ὈΔΥΣΣΕΎΣ",
    "ΌΣΟΣ",
    "λόγος",
    "σοφός",
    "İstanbul",
    "ISTANBUL",
    "ıspanak",
    "DİYARBAKIR",
    "Straße",
    "STRASSE",
    "GROẞ",
    "Maßstab",
    "ﬁnance",
    "ﬂuﬀy",
    "oﬃce",
    "Ĳssel",
    "Œuvre",
    "Æsir",
    "ПРИВЕТ",
    "мир",
    "Ёлка",
    "Їжак",
    "Москва",
    "ΑΘΗΝΑ",
    "Ελλάδα",
    "KELVIN",
    "ΩMEGA",
    "Ångström",
    "ǅemal",
    "ǈubljana",
    "TschüSS",
    "ǰump",
    "ŉot",
    "𐐀𐐨𐐁",
    "ᎠᏍᎦᏯ",
    "ꮳꮃꭹ",
    "ᲀᲁᲂ",
]
CJK = (
    _rng(0x4E00, 0x9FFF)
    + _rng(0x3400, 0x4DBF)
    + _rng(0x20000, 0x2A6DF)  # extension B
    + _rng(0x2A700, 0x2B73F)  # extension C
    + _rng(0xF900, 0xFAFF)  # compatibility ideographs
    + _rng(0x2F800, 0x2FA1F)  # compatibility supplement
    + _rng(0x30000, 0x3134A)  # extension G
)
KANA = _rng(0x3041, 0x3096) + _rng(0x30A1, 0x30FA) + _rng(0xFF66, 0xFF9D) + ["ー", "ゝ", "ゞ", "ヽ", "ヾ", "゙", "゚"]
CJK_PUNCT = _rng(0x3001, 0x303F) + list("・「」『』【】〈〉《》〔〕")
HANGUL = _rng(0xAC00, 0xD7A3)
JAMO = _rng(0x1100, 0x11FF) + _rng(0x3131, 0x318E) + _rng(0xA960, 0xA97C) + _rng(0xD7B0, 0xD7C6)
THAI = _rng(0x0E01, 0x0E3A) + _rng(0x0E3F, 0x0E5B)
ARABIC = _rng(0x0621, 0x064A) + _rng(0x0671, 0x06D3) + list("،؛؟٪٫٬") + _rng(0x0660, 0x0669)
HARAKAT = _rng(0x064B, 0x065F) + ["\u0670", "\u06d6", "\u06e1", "\u06ed"]
ARABIC_PRESENTATION = (
    _rng(0xFB50, 0xFBB1) + _rng(0xFE70, 0xFE74) + _rng(0xFE76, 0xFEFC) + ["\ufdf2", "\ufdfa", "\ufdfb"]
)
HEBREW = _rng(0x05D0, 0x05EA) + list("־׀׃׆׳״") + _rng(0xFB1D, 0xFB4F)
NIQQUD = _rng(0x05B0, 0x05BD) + ["\u05bf", "\u05c1", "\u05c2", "\u05c4", "\u05c5", "\u05c7"] + _rng(0x0591, 0x05AF)
DEVANAGARI = (
    _rng(0x0904, 0x0939) + _rng(0x093E, 0x094D) + ["\u0901", "\u0902", "\u093c", "।", "॥"] + _rng(0x0966, 0x096F)
)
OTHER_SCRIPTS = (
    _rng(0x0531, 0x0556)
    + _rng(0x0561, 0x0587)  # Armenian
    + _rng(0x10D0, 0x10FA)  # Georgian
    + _rng(0x1200, 0x1248)  # Ethiopic
    + _rng(0x0F40, 0x0F47)  # Tibetan
    + _rng(0x1780, 0x17B3)  # Khmer
    + _rng(0x0B85, 0x0B95)  # Tamil
    + _rng(0x13A0, 0x13F5)  # Cherokee
    + _rng(0x1820, 0x1842)  # Mongolian
    + _rng(0x10330, 0x1034A)  # Gothic
    + _rng(0x1D400, 0x1D433)  # mathematical alphanumerics
)
EMOJI = (
    _rng(0x1F600, 0x1F64F)
    + _rng(0x1F300, 0x1F35F)
    + _rng(0x1F680, 0x1F6C5)
    + _rng(0x1F900, 0x1F9FF)
    + _rng(0x2600, 0x26FF)
    + _rng(0x2700, 0x27BF)
    + ["\u00a9", "\u00ae", "\u203c", "\u2049", "\u2122", "\u2139"]
)
SKIN_TONES = _rng(0x1F3FB, 0x1F3FF)
ZWJ = "\u200d"
VS16 = "\ufe0f"
EMOJI_SEQUENCES = [
    "👨\u200d👩\u200d👧\u200d👦",
    "👩\u200d❤\ufe0f\u200d👨",
    "🏳\ufe0f\u200d🌈",
    "🏴\u200d☠\ufe0f",
    "👩🏽\u200d💻",
    "🧑🏿\u200d🤝\u200d🧑🏻",
    "👁\ufe0f\u200d🗨\ufe0f",
    "🐕\u200d🦺",
    "❤\ufe0f\u200d🔥",
    "🫱🏼\u200d🫲🏿",
    "1\ufe0f\u20e3",
    "#\ufe0f\u20e3",
    "*\u20e3",
    "©\ufe0f",
    "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
    "👍🏻",
    "👍🏿",
    "✋🏽",
    "🇺🇸",
    "🇫🇷",
    "🇯🇵",
    "🇪🇺",
    "🇺🇳",
    "🇦",
    "🇦🇧🇨",
    "☺",
    "☺\ufe0f",
    "☺\ufe0e",
]
REGIONAL = _rng(0x1F1E6, 0x1F1FF)
ZERO_WIDTH = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u200e",
    "\u200f",
    "\ufeff",
    "\u00ad",
    "\u2060",
    "\u2061",
    "\u2062",
    "\u2063",
    "\u2064",
    "\u206a",
    "\u206f",
    "\u180e",
    "\u061c",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\ufff9",
    "\ufffa",
    "\ufffb",
    "\U000e0001",
    "\U000e0020",
]
C0 = _rng(0x00, 0x1F) + ["\x7f"]
C1 = _rng(0x80, 0x9F)
ODD = [
    "\ufffd",
    "\x00",
    "\ufffe",
    "\uffff",
    "\U0010ffff",
    "\ue000",
    "\uf8ff",
    "\U000f0000",
    "\U00100000",
    "\ufe00",
    "\ufe0f",
    "\U000e0100",
    "\u0378",
    "\u0bff",
    "\U0001ffff",
    "\U0003ffff",
    "\u034f",
    "\u115f",
    "\u3164",
    "\uffa0",
]
FULLWIDTH = _rng(0xFF01, 0xFF5E) + _rng(0xFFE0, 0xFFE6) + _rng(0xFF61, 0xFF65)
WHITESPACE = [
    "\t",
    "\r",
    "\n",
    "\r\n",
    "\x0b",
    "\x0c",
    "\xa0",
    "\u1680",
    "\u202f",
    "\u205f",
    "\u3000",
    "\u2028",
    "\u2029",
    "\x85",
    "  ",
    " \t ",
    "\n\n",
    "\r\n\r\n",
    "\n \n",
] + _rng(0x2000, 0x200A)
ASCII_PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
UNICODE_PUNCT = list(
    "«»‘’‚‛“”„‟‹›–—―‖‗†‡•‣․‥…‧‰‱′″‴‵‸※‼‽‾⁀⁁⁂⁃⁄⁅⁆⁇⁈⁉⁊⁋⁌⁍⁎⁏⁐⁑⁓⁔⁕⁖⁗⁘⁙⁚⁛⁜⁝⁞"
    "¡¢£¤¥¦§¨©ª¬®¯°±²³´µ¶·¸¹º¼½¾¿×÷"
    "⸀⸁⸂⸎⸗⸚⸜⸝⸰⸺⸻⹂、。〃〈〉《》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〽"
    "€₹₽₿∀∂∃∅∇∈∑√∞∫≈≠≤≥⊂⊕⌘⌫␣□■▲►◆○●★☆♠♣♥♦♪♫✓✗"
    "،؛؟٪۔।॥၊။።፣፤፥፦፧፨჻᙭᙮᛫᛬᛭‐‑‒﴾﴿︐︑︒︓︔︕︖︗︘︙︰︱﹐﹑﹒﹔﹕﹖﹗﹘﹙﹚！＂＃％＆＇（）＊，－．／：；？＠［＼］＿｛｝｡｢｣､･"
)
DIGITS = (
    list("0123456789")
    + _rng(0x0660, 0x0669)
    + _rng(0x06F0, 0x06F9)
    + _rng(0x0966, 0x096F)
    + _rng(0xFF10, 0xFF19)
    + list("²³¹¼½¾⁰⁴⁵⁶⁷⁸⁹₀₁₂₃ⅠⅡⅢⅣⅤⅫⅰⅱⅲ①②③⑩⑳⓪❶❷𝟎𝟏𝟐𝟙𝟚𝟬𝟭")
    + _rng(0x0E50, 0x0E59)
)


# ---------------------------------------------------------------- generators of single strings


def _word(r: random.Random, pool: Sequence[str], lo: int = 1, hi: int = 12) -> str:
    return "".join(r.choice(pool) for _ in range(r.randint(lo, hi)))


def _sep(r: random.Random) -> str:
    return r.choice([" ", " ", " ", " ", "  ", "\n", "\t", "\xa0", "\u3000", "\r\n", "\u2009", ", ", ". "])


def _join(r: random.Random, parts: Sequence[str]) -> str:
    out = []
    for i, p in enumerate(parts):
        if i:
            out.append(_sep(r))
        out.append(p)
    return "".join(out)


def _stack_marks(r: random.Random, base: str, lo: int = 1, hi: int = 6) -> str:
    return base + "".join(r.choice(COMBINING) for _ in range(r.randint(lo, hi)))


def gen_accents(r: random.Random) -> str:
    words = []
    for _ in range(r.randint(1, 8)):
        kind = r.randrange(5)
        w = _word(r, LATIN_PRECOMPOSED + LATIN, 1, 14)
        if kind == 1:
            w = unicodedata.normalize("NFD", w)
        elif kind == 2:
            w = "".join(_stack_marks(r, c, 0, 4) for c in w)
        elif kind == 3:
            w = _stack_marks(
                r, r.choice(["", " ", "a", "ı", "İ", "1", "-", "[", "中"]), 1, 12
            )  # marks with odd or no base
        elif kind == 4:
            w = unicodedata.normalize("NFKD", w) + r.choice(ENCLOSING + SPACING_MARKS)
        words.append(w)
    return _join(r, words)


def gen_cjk(r: random.Random) -> str:
    parts = []
    for _ in range(r.randint(1, 6)):
        pool = r.choice([CJK, CJK, KANA, CJK_PUNCT, CJK + KANA + LATIN, CJK + FULLWIDTH])
        parts.append(_word(r, pool, 1, 15))
    # CJK glued to Latin words and digits, no spaces at all
    return "".join(parts) if r.random() < 0.4 else _join(r, parts)


def gen_hangul(r: random.Random) -> str:
    parts = []
    for _ in range(r.randint(1, 6)):
        kind = r.randrange(4)
        if kind == 0:
            parts.append(_word(r, HANGUL, 1, 8))
        elif kind == 1:
            parts.append(_word(r, JAMO, 1, 8))
        elif kind == 2:
            parts.append(unicodedata.normalize("NFD", _word(r, HANGUL, 1, 6)))
        else:
            parts.append(_word(r, HANGUL + JAMO + DIGITS + LATIN, 1, 10))
    return _join(r, parts)


def gen_thai(r: random.Random) -> str:
    return _join(r, [_word(r, THAI, 2, 30) for _ in range(r.randint(1, 4))])


def gen_arabic_hebrew(r: random.Random) -> str:
    parts = []
    for _ in range(r.randint(1, 7)):
        kind = r.randrange(5)
        if kind == 0:
            parts.append("".join(c + (r.choice(HARAKAT) if r.random() < 0.6 else "") for c in _word(r, ARABIC, 2, 9)))
        elif kind == 1:
            parts.append("".join(c + (r.choice(NIQQUD) if r.random() < 0.6 else "") for c in _word(r, HEBREW, 2, 9)))
        elif kind == 2:
            parts.append(_word(r, ARABIC_PRESENTATION, 1, 6))
        elif kind == 3:
            parts.append(_word(r, DEVANAGARI + OTHER_SCRIPTS, 1, 10))
        else:  # bidi controls around mixed-direction text
            parts.append(
                r.choice(["\u200f", "\u202b", "\u2067", ""])
                + _word(r, ARABIC + HEBREW + LATIN, 1, 8)
                + r.choice(["\u202c", "\u2069", "\u200e", ""])
            )
    return _join(r, parts)


def gen_emoji(r: random.Random) -> str:
    parts = []
    for _ in range(r.randint(1, 8)):
        kind = r.randrange(6)
        if kind == 0:
            parts.append(_word(r, EMOJI, 1, 5))
        elif kind == 1:
            parts.append(r.choice(EMOJI_SEQUENCES))
        elif kind == 2:
            parts.append(r.choice(EMOJI) + r.choice(SKIN_TONES) + (ZWJ + r.choice(EMOJI) if r.random() < 0.5 else ""))
        elif kind == 3:
            parts.append(r.choice(REGIONAL) + r.choice(REGIONAL) + (r.choice(REGIONAL) if r.random() < 0.2 else ""))
        elif kind == 4:
            parts.append(_word(r, LATIN, 1, 6) + r.choice(EMOJI) + VS16 * r.randint(0, 2) + _word(r, LATIN, 0, 6))
        else:
            parts.append(ZWJ.join(r.choice(EMOJI) for _ in range(r.randint(2, 5))))
    return "".join(parts) if r.random() < 0.3 else _join(r, parts)


def gen_controls(r: random.Random) -> str:
    pool = ZERO_WIDTH + C0 + C1 + ODD
    parts = []
    for _ in range(r.randint(1, 10)):
        kind = r.randrange(4)
        if kind == 0:
            parts.append(_word(r, pool, 1, 4))
        elif kind == 1:  # invisible characters inside words: they must vanish without splitting the word
            w = _word(r, LATIN, 2, 10)
            i = r.randrange(len(w) + 1)
            parts.append(w[:i] + r.choice(pool) + w[i:])
        elif kind == 2:
            parts.append(r.choice(WORDS))
        else:
            parts.append(r.choice(pool) * r.randint(1, 5))
    return "".join(parts) if r.random() < 0.3 else _join(r, parts)


def gen_fullwidth(r: random.Random) -> str:
    return _join(r, [_word(r, FULLWIDTH + (LATIN if r.random() < 0.3 else []), 1, 10) for _ in range(r.randint(1, 6))])


def gen_long_word(r: random.Random) -> str:
    n = r.choice([99, 100, 100, 101, 101, 102, 150, 200, 333, 1000])
    kind = r.randrange(9)
    if kind == 0:
        w = "".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))
    elif kind == 1:
        w = r.choice(["x", "ab", "abc", "the", "un"]) * n
        w = w[:n]
    elif kind == 2:
        w = "".join(r.choice(LATIN_PRECOMPOSED) for _ in range(n))  # 100 chars that stay 100 after accent stripping
    elif kind == 3:
        w = unicodedata.normalize(
            "NFD", "".join(r.choice("éèàüöñç") for _ in range(n))
        )  # 2n code points, n after stripping
    elif kind == 4:
        w = "".join(r.choice("0123456789") for _ in range(n))
    elif kind == 5:
        w = "İ" * (n // 2) + "a" * (n - n // 2)  # lowercasing İ grows it to two code points
    elif kind == 6:
        w = "".join(r.choice(HANGUL) for _ in range(n // 3 + r.randint(-1, 1)))  # jamo decomposition triples it
    elif kind == 7:
        w = (r.choice(WORDS) * 30)[:n]
    else:
        w = "".join(r.choice(CYRILLIC + GREEK) for _ in range(n))
    pre = r.choice(["", "", "word ", "A ", "(", "[CLS]", "\u200b"])
    post = r.choice(["", "", " end", ".", ")", "[SEP]", "\u00ad"])
    return pre + w + post


def gen_whitespace(r: random.Random) -> str:
    parts = []
    for _ in range(r.randint(1, 10)):
        parts.append(r.choice(WORDS + CASE_WORDS) if r.random() < 0.7 else "")
        parts.append("".join(r.choice(WHITESPACE) for _ in range(r.randint(1, 4))))
    s = "".join(parts)
    return s if r.random() < 0.8 else "".join(r.choice(WHITESPACE) for _ in range(r.randint(1, 8)))


def gen_punct(r: random.Random) -> str:
    pool = ASCII_PUNCT + UNICODE_PUNCT
    parts = []
    for _ in range(r.randint(1, 10)):
        kind = r.randrange(4)
        if kind == 0:
            parts.append(_word(r, pool, 1, 6))
        elif kind == 1:
            parts.append(r.choice(WORDS) + _word(r, pool, 1, 3) + r.choice(WORDS))
        elif kind == 2:
            parts.append(
                r.choice(
                    [
                        "e.g.",
                        "i.e.",
                        "U.S.A.",
                        "3.14",
                        "1,000,000",
                        "C++",
                        "C#",
                        "x86-64",
                        "don't",
                        "l'homme",
                        "naïve",
                        "co-operate",
                        "user@example.com",
                        "http://a.b/c?d=e&f#g",
                        "...",
                        "?!",
                        "--",
                        "(a)",
                        "[1]",
                        "{x}",
                        "<b>",
                        "$5",
                        "50%",
                        "5°C",
                        "½",
                        "a/b",
                    ]
                )
            )
        else:
            parts.append(_word(r, pool + LATIN, 2, 8))
    return "".join(parts) if r.random() < 0.3 else _join(r, parts)


def gen_special_tokens(r: random.Random) -> str:
    parts = []
    for _ in range(r.randint(1, 8)):
        t = r.choice(SPECIAL_TOKENS)
        kind = r.randrange(8)
        if kind == 0:
            parts.append(t)
        elif kind == 1:
            parts.append(r.choice(WORDS) + t + r.choice(WORDS))
        elif kind == 2:
            parts.append(t * r.randint(2, 4))
        elif kind == 3:
            parts.append(t.lower() if r.random() < 0.5 else t[:-1] + " " + t[-1])
        elif kind == 4:
            parts.append("[" + t + "]" if r.random() < 0.5 else t[1:-1])
        elif kind == 5:
            parts.append(
                r.choice(LATIN_PRECOMPOSED + CJK[:50] + EMOJI[:20]) + t + r.choice(ZERO_WIDTH + ["é", "\u0301"])
            )
        elif kind == 6:  # an invisible character inside the token: no longer the special token in the raw text
            i = r.randrange(1, len(t))
            parts.append(t[:i] + r.choice(ZERO_WIDTH + ["\x00", "\u00ad"]) + t[i:])
        else:
            parts.append(t + r.choice(["\n", "\t", "\u3000", ""]) + r.choice(SPECIAL_TOKENS))
    return "".join(parts) if r.random() < 0.3 else _join(r, parts)


def gen_digits(r: random.Random) -> str:
    parts = []
    for _ in range(r.randint(1, 8)):
        kind = r.randrange(3)
        if kind == 0:
            parts.append(_word(r, DIGITS, 1, 12))
        elif kind == 1:
            parts.append(
                str(r.randrange(10 ** r.randint(1, 30))) + r.choice(["", ".5", ",000", "e-9", "%", "th", "kg"])
            )
        else:
            parts.append(_word(r, "0123456789", 1, 4) + r.choice(LATIN + DIGITS) + _word(r, "0123456789", 1, 4))
    return _join(r, parts)


def gen_case(r: random.Random) -> str:
    parts = []
    for _ in range(r.randint(1, 8)):
        kind = r.randrange(5)
        if kind == 0:
            parts.append(r.choice(CASE_WORDS))
        elif kind == 1:
            parts.append(_word(r, CASE_SPECIALS, 1, 8))
        elif kind == 2:
            parts.append(_word(r, GREEK + GREEK_POLYTONIC, 1, 10))
        elif kind == 3:
            parts.append(_word(r, CYRILLIC, 1, 10))
        else:
            w = r.choice(WORDS + CASE_WORDS)
            parts.append("".join(c.upper() if r.random() < 0.5 else c for c in w))
    return _join(r, parts)


def _random_codepoint(r: random.Random) -> str:
    # Mostly the BMP, where most assigned characters are, but the whole range too; never a surrogate.
    while True:
        cp = r.randrange(0x10000) if r.random() < 0.7 else r.randrange(0x110000)
        if not 0xD800 <= cp <= 0xDFFF:
            return chr(cp)


def gen_random_codepoints(r: random.Random) -> str:
    n = r.randint(1, 40)
    out = []
    for _ in range(n):
        out.append(_random_codepoint(r))
        if r.random() < 0.15:
            out.append(" ")
    return "".join(out)


_SIMPLE: list[tuple[str, Callable[[random.Random], str]]] = [
    ("accents", gen_accents),
    ("cjk", gen_cjk),
    ("hangul", gen_hangul),
    ("thai", gen_thai),
    ("arabic_hebrew", gen_arabic_hebrew),
    ("emoji", gen_emoji),
    ("controls", gen_controls),
    ("fullwidth", gen_fullwidth),
    ("long_word", gen_long_word),
    ("whitespace", gen_whitespace),
    ("punct", gen_punct),
    ("special_tokens", gen_special_tokens),
    ("digits", gen_digits),
    ("case", gen_case),
]


def gen_mix(r: random.Random) -> str:
    parts = [r.choice(_SIMPLE)[1](r) for _ in range(r.randint(2, 6))]
    if r.random() < 0.3:
        parts.append(gen_random_codepoints(r))
    r.shuffle(parts)
    glue = r.choice(["", " ", "\n", "\n\n", "\t", "\u3000", "\u200b"])
    return glue.join(parts)


# Hand-written edge cases, always present at the head of the set.
FIXED = [
    "",
    " ",
    "\n",
    "\t\r\n",
    "\x00",
    "\ufffd",
    "\ufeff",
    "\u200b",
    "\u00ad",
    "\xa0",
    "\u3000",
    "\u2028\u2029\x85",
    "a",
    "A",
    "é",
    "e\u0301",
    "\u0301",
    "\u0301\u0302\u0303",
    "a\u0301\u0302\u0303\u0304\u0305\u0306",
    "Hello, world!",
    "HELLO WORLD",
    "hello\tworld\r\nnew\rline\nend",
    "a\x00b",
    "a\ufffdb",
    "a\u200bb",
    "a\u00adb",
    "[CLS]",
    "[SEP]",
    "[UNK]",
    "[MASK]",
    "[PAD]",
    "[CLS][SEP]",
    "foo[CLS]bar",
    "[cls]",
    "[ CLS ]",
    "[CLS",
    "CLS]",
    "[[SEP]]",
    "[MASK]ed",
    "x[UNK]y",
    "é[SEP]é",
    "[C\x00LS]",
    "[CLS]\u0301",
    "\u0301[CLS]",
    "中[SEP]文",
    "[PAD]" * 10,
    "ΣΊΣΥΦΟΣ",
    "ὈΔΥΣΣΕΎΣ",
    "ς",
    "İ",
    "İstanbul",
    "ß",
    "STRASSE",
    "Straße",
    "ẞ",
    "ﬁ",
    "ﬃ",
    "ǅ",
    "K",
    "Ω",
    "Å",
    "中文",
    "中文字",
    "𠀀𠀁",
    "\uf900\ufa0d",
    "\U0002f800",
    "한국어",
    "\u1112\u1161\u11ab",
    "ㄱㄴㄷ",
    "ภาษาไทย",
    "مَرْحَبًا",
    "שָׁלוֹם",
    "👨\u200d👩\u200d👧\u200d👦",
    "👍🏽",
    "🇺🇸🇫🇷",
    "1\ufe0f\u20e3",
    "Ｈｅｌｌｏ　ｗｏｒｌｄ！",
    "x" * 99,
    "x" * 100,
    "x" * 101,
    "é" * 100,
    "é" * 101,
    "e\u0301" * 100,
    "e\u0301" * 101,
    "İ" * 50,
    "İ" * 51,
    "한" * 33,
    "한" * 34,
    "a" * 1000,
    "[UNK]" * 30,
    "1" * 100,
    "1" * 101,
    "...",
    "?!?!",
    "'" * 5,
    "\r\n\r\n",
    "a\r\n\r\nb",
    " a ",
    "  leading and trailing  ",
    "tab\tseparated\tvalues",
    "\x01\x02\x03\x1f\x7f\x80\x9f",
    "\U0010ffff",
    "\ue000",
    "\uffff",
    "\U000e0001\U000e0041",
]


@cache
def _build(n: int, seed: int) -> tuple[tuple[str, str], ...]:
    r = random.Random(seed)
    out: list[tuple[str, str]] = [("fixed", s) for s in FIXED]
    # Each single-kind generator, then mixes, then random code points; ~20% of the set is random code points.
    per_kind = max(1, int(n * 0.045))
    for name, gen in _SIMPLE:
        out.extend((name, gen(r)) for _ in range(per_kind))
    n_random = max(1, int(n * 0.2))
    n_mix = max(0, n - len(out) - n_random)
    out.extend(("mix", gen_mix(r)) for _ in range(n_mix))
    out.extend(("random_codepoints", gen_random_codepoints(r)) for _ in range(n_random))
    for kind, s in out:
        if any(0xD800 <= ord(c) <= 0xDFFF for c in s):  # pragma: no cover - a generator bug
            raise AssertionError(f"lone surrogate in the parity set ({kind}): {s!r}")
    return tuple(out)


def stress_kinds(n: int = 3000, seed: int = SEED) -> list[tuple[str, str]]:
    """(kind, text) pairs of the parity set, deterministic for a given ``n`` and ``seed``."""
    return list(_build(n, seed))


def stress_texts(n: int = 3000, seed: int = SEED) -> list[str]:
    """The parity set: ``n`` strings (about), no lone surrogates."""
    return [s for _, s in _build(n, seed)]


SURROGATE_FIXED = [
    "\ud800",
    "\udfff",
    "\udc00",
    "a\ud800b",
    "\ud83d\ude00",
    "\ude00\ud83d",
    "[CLS]\ud800",
    "\ud800[SEP]",
    "[C\ud800LS]",
    "x" * 50 + "\ud800" + "x" * 50,
    "é\ud801\u0301",
    "中\udbff文",
    "\ud800 \udc00 \udbff",
    "word \ud800word word\udfff",
    "\ud800" * 20,
    "Hello\udc80World",
    "İ\ud800İ",
]


@cache
def _build_surrogates(n: int, seed: int) -> tuple[str, ...]:
    r = random.Random(seed + 1)
    base = stress_texts(max(n, 200), seed)
    out = list(SURROGATE_FIXED)
    while len(out) < n:
        s = r.choice(base)
        for _ in range(r.randint(1, 4)):
            i = r.randrange(len(s) + 1)
            sur = chr(r.randrange(0xD800, 0xE000))
            s = s[:i] + sur + s[i:]
        out.append(s)
    return tuple(out)


def surrogate_texts(n: int = 300, seed: int = SEED) -> list[str]:
    """Strings holding lone surrogates (for rapidrag only: the reference cannot encode them)."""
    return list(_build_surrogates(n, seed))


def replace_surrogates(s: str) -> str:
    """Each lone surrogate replaced by U+FFFD: same length, so offsets into either string agree."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)


if __name__ == "__main__":  # pragma: no cover - a summary for humans
    from collections import Counter

    kinds = stress_kinds()
    print(f"{len(kinds)} stress strings, {sum(len(s) for _, s in kinds)} code points")
    for kind, count in sorted(Counter(k for k, _ in kinds).items()):
        print(f"  {kind:18s} {count}")
    sur = surrogate_texts()
    print(f"{len(sur)} strings with lone surrogates")
