"""Write tests/fixtures/clip_tokens.json: captions + the ids open_clip's own tokenizer gives them.

The reference is open_clip's SimpleTokenizer (an independent, pure-Python implementation of CLIP's
BPE), run in its own venv so openwit's code is not involved. Regenerate with:

    python3 -m venv benchmarks/.venv-openclip
    benchmarks/.venv-openclip/bin/pip install torch open-clip-torch "webdataset<=0.2.86" ftfy==6.3.1 pyarrow
    benchmarks/.venv-openclip/bin/python benchmarks/make_tokenizer_fixture.py \\
        ../shared/data/metadata/img2dataset_test_10000.parquet tests/fixtures/clip_tokens.json
"""
import json
import sys

import open_clip
import pyarrow.parquet as pq
from open_clip.tokenizer import tokenize

EOT = 49407
HANDWRITTEN = [
    "",
    "   ",
    "A Photo of a CAT.",
    "don’t stop — it’s “quoted” text…",
    "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e na\u0308ive",  # composed + combining diaeresis (NFC by ftfy)
    "Tom &amp; Jerry &lt;3 &quot;classic&quot; &#39;cartoon&#39; &eacute;t&eacute;",
    "double escaped &amp;amp; entity &amp;lt;b&amp;gt;",
    "ﬁne ﬂowers ｆｕｌｌｗｉｄｔｈ ＡＢＣ１２３",
    "mojibake: cafÃ© donâ€™t",
    "emoji 🐱🐶 party 🎉🎉 and flags 🇯🇵",
    "日本語のキャプション 東京タワー",
    "中文标题：北京 故宫 2019年",
    "Ελληνικά ΟΔΟΣ Σοφία",
    "русский текст Москва",
    "עברית ועוד العربية نص",
    "tabs\tand\nnewlines\r\nand   spaces",
    "numbers 1234567890 3.14159 1,000,000 2nd 3rd",
    "it's they're we've I'm you'll he'd can't won't",
    "control\x00chars\x07here\x1b[31mred\x1b[0m",
    "<|startoftext|> literal special <|endoftext|> tokens",
    "URL https://example.com/a_b-c?d=1&e=2#frag and e-mail x.y@z.org",
    "punctuation!!! ??? ... --- ((())) [[x]] {{y}} ***",
    "SKU: AB-1234/XY_56 #hashtag @user $19.99 50% off",
    " ".join(["very long caption with many words"] * 30),
    "supercalifragilisticexpialidocious" * 10,
    "a" * 500,
    "🙂" * 100,
]


def main(parquet_path: str, out_path: str) -> None:
    texts = pq.read_table(parquet_path, columns=["TEXT"]).column("TEXT").to_pylist()
    texts = [t for t in texts if t]
    laion = texts[::53][:170] + sorted(texts, key=len)[-3:]  # spread over the file + the 3 longest
    captions = HANDWRITTEN + laion
    ids = tokenize(captions).tolist()
    payload = {
        "reference": f"open_clip {open_clip.__version__} open_clip.tokenizer.tokenize (SimpleTokenizer)",
        "command": "benchmarks/.venv-openclip/bin/python benchmarks/make_tokenizer_fixture.py "
                   "../shared/data/metadata/img2dataset_test_10000.parquet tests/fixtures/clip_tokens.json",
        "context_length": 77,
        "cases": [{"caption": c, "ids": row[: row.index(EOT) + 1]} for c, row in zip(captions, ids)],
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(payload, f, ensure_ascii=False, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
