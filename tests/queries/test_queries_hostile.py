"""Hostile wikitext (issue 10): markup stripping is linear in the page size (the one-pass stack
functions give what removing the innermost markup again and again gives), and a page over the
size limit is skipped and counted without ever being held, so memory per page is bounded."""
import bz2
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import pytest

from openwit.queries import cli as queries_cli
from openwit.queries import dump, wikitext

MB = 1_000_000
HOSTILE = {  # 1 MB each; the regex version took minutes to hours on these
    "unclosed <ref>": "<ref>" * (MB // 5),
    "unclosed <math> and <ref name=": ("<math>" + "<ref name=x " * 3) * (MB // 42),
    "nested [[ ]]": "[[a|" * (MB // 6) + "]]" * (MB // 6),
    "[[ then ]]": "[[" * (MB // 4) + "]]" * (MB // 4),
    "nested {{ }}": "{{a|" * (MB // 6) + "}}" * (MB // 6),
    "nested {{{ }}}": "{{{" * (MB // 6) + "}}}" * (MB // 6),
    "nested tables": "{|\n" * (MB // 6) + "|}\n" * (MB // 6),
    "unclosed external links": "[http://x.org " * (MB // 14),
    "a line of =": "=" * MB,
    "= lines": ("=" * 500 + "x\n") * (MB // 502),
    "mixed": ("[[File:a.jpg|thumb|{{b|[http://c <ref>d [[e]]" * 3 + "]]}}</ref>") * (MB // 140),
}


@contextmanager
def _deadline(seconds: float):
    """Fail instead of hanging: the regex engine checks signals while it backtracks."""
    def _raise(*_):
        raise TimeoutError(f"took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_one_megabyte_hostile_page_is_fast(kind):
    text = HOSTILE[kind]
    assert len(text) >= 0.95 * MB
    start = time.perf_counter()
    with _deadline(10):
        plain = wikitext.strip_markup(text)
        list(wikitext.runs(plain))
        wikitext.link_targets(text)
    assert time.perf_counter() - start < 3, kind  # ~0.1-0.4 s here


def _repeat(pattern, repl, text):
    while True:
        new = pattern.sub(repl, text)
        if new == text:
            return text
        text = new


def _random_markup(rng, tokens, separators, n):
    """Markup tokens, each followed by a separator: brace runs never merge (how runs like `{{{{{`
    split is a matter of taste, and the stack passes only see what 3 regex passes left)."""
    return "".join(rng.choice(tokens) + rng.choice(separators) for _ in range(n))


def test_stack_passes_equal_repeated_innermost_removal():
    rng = random.Random(10)
    cases = [
        (wikitext._PARAM, "{{{", "}}}", wikitext._PARAM_TOKEN, ["{{{", "}}}", "{", "}", "{{", "}}"]),
        (wikitext._TEMPLATE, "{{", "}}", wikitext._TEMPLATE_TOKEN, ["{{", "}}", "{", "}"]),
        (wikitext._TABLE, "{|", "|}", wikitext._TABLE_TOKEN, ["{|", "|}", "|", "{", "}"]),
    ]
    for pattern, opener, closer, token, pieces in cases:
        for _ in range(3000):
            text = _random_markup(rng, pieces, ["a", " ", "\n", "x|"], rng.randint(0, 30))
            assert wikitext._nested_spans(text, token, opener, closer) == _repeat(pattern, "", text), text


def test_link_stack_equals_repeated_innermost_links():
    rng = random.Random(11)
    pieces = ["[[", "]]", "[", "]", "[[File:x.jpg|thumb|", "[[Category:y", "[[a|"]
    link = lambda m: wikitext._link_text(m.group(1), m.group(2))  # noqa: E731
    for _ in range(5000):
        text = _random_markup(rng, pieces, ["a", "s ", " ", "|", "\n"], rng.randint(0, 24))
        if text.count("[[") > 6:  # deeper than _MAX_LINK_DEPTH may differ by design
            continue
        assert wikitext._links(text) == _repeat(wikitext._LINK, link, text), text


def test_real_markup_is_stripped_as_before():
    page = ("== History ==\n[[Image:Diggers.gif|thumb|upright|Woodcut from a [[Diggers]] document by "
            "[[William Everard (Digger)|William Everard]]]]\n{{Main|{{{1|History}}}}} {|\n| a || b\n|}\n"
            "<ref name=x/>Text<ref>{{cite|url=http://x.org}}</ref> with [http://x.org a link] and "
            "[[cat]]s.<math>x^2</math>")
    assert wikitext.strip_markup(page).split() == [
        "History", "Woodcut", "from", "a", "Diggers", "document", "by", "William", "Everard", "Text", "with",
        "a", "link", "and", "cats."]
    assert re.sub(r"\s+", " ", wikitext.strip_markup("=== A === \n\n== B ==\n=")).strip() == "A B ="
    deep = "[[a|" * 20 + "x" + "]]" * 20 + " " + "{{b|" * 20 + "y" + "}}" * 20 + " after"
    assert wikitext.strip_markup(deep).split()[-1] == "after" and "y" not in wikitext.strip_markup(deep)


def _dump(pages: list[tuple[str, str]]) -> bytes:
    body = "".join(f"<page><title>{t}</title><ns>0</ns><revision><text>{x}</text></revision></page>\n"
                   for t, x in pages)
    return f"<mediawiki>\n{body}</mediawiki>\n".encode()


def test_pages_over_the_size_limit_are_skipped_not_held():
    pages = [("Small", "Alpha beta &lt;ref&gt; gamma"), ("Big", "word " * 40), ("After", "Delta")]
    data = _dump(pages)  # fed in 7-byte pieces: a page's text arrives in many parts
    got = list(dump.parse_pages([data[i:i + 7] for i in range(0, len(data), 7)], "x.xml", max_chars=100))
    assert [(p.title, p.text, p.too_large) for p in got] == [
        ("Small", "Alpha beta <ref> gamma", False), ("Big", "", True), ("After", "Delta", False)]
    # a multistream byte range (one bz2 stream per page, the last one holding </mediawiki>) alike
    streams = [bz2.compress(f"<page><title>{t}</title><ns>0</ns><revision><text>{x}</text></revision></page>"
                            .encode()) for t, x in pages] + [bz2.compress(b"\n</mediawiki>\n")]
    path = tempfile.mktemp(suffix="-multistream.xml.bz2")
    with open(path, "wb") as f:
        f.write(b"".join(streams))
    try:
        ranged = list(dump.read_task(dump.Task(path, 0, sum(map(len, streams))), max_chars=100))
    finally:
        os.unlink(path)
    assert [(p.title, p.too_large) for p in ranged] == [("Small", False), ("Big", True), ("After", False)]


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc for the peak RSS")
def test_memory_per_page_is_bounded(tmp_path):
    """A 30 MB page (as a hostile or broken dump can hold) cost ~2 GB before; now it is skipped,
    counted and recorded in summary.json, and the run stays near its baseline memory."""
    words = [f"w{i:04d}" for i in range(5000)]
    rng = random.Random(3)
    line = " ".join(rng.choice(words) for _ in range(170_000))  # ~1 MB
    path = tmp_path / "huge.xml"
    with open(path, "w") as f:
        f.write("<mediawiki>\n<page><title>Fine</title><ns>0</ns><revision><text>Alpha beta</text></revision></page>\n"
                "<page><title>Huge</title><ns>0</ns><revision><text>")
        for _ in range(30):
            f.write(line + "\n")
        f.write("</text></revision></page>\n</mediawiki>\n")
    out = tmp_path / "q"
    # VmHWM: this process's own peak (ru_maxrss would carry pytest's size over through fork + exec)
    probe = ("import runpy, sys\nsys.argv = ['openwit-queries'] + sys.argv[1:]\ntry:\n"
             "    runpy.run_module('openwit.queries', run_name='__main__')\nexcept SystemExit as e:\n"
             "    code = e.code\nhwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
             "print('peak_mb', int(hwm.split()[1]) // 1024)\nsys.exit(code)\n")
    proc = subprocess.run([sys.executable, "-c", probe, "--out", str(out), "--wiki-dump", str(path),
                           "--sources", "unigram,bigram", "--min-unigram-count", "1"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak = int(proc.stdout.split("peak_mb")[1].split()[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["read"]["skipped_page_too_large"] == 1 and summary["read"]["articles"] == 1
    assert summary["limits"] == {"max_page_chars": dump.MAX_PAGE_CHARS}
    assert peak < 400, f"peak RSS {peak} MB"  # ~190 MB here (Beam's own); 2.1 GB before


def test_max_page_chars_flag(tmp_path, capsys):
    path = tmp_path / "d.xml"
    path.write_bytes(_dump([("A", "Alpha beta gamma"), ("B", "x" * 50), ("C", "Gamma delta")]))
    assert queries_cli.main(["--out", str(tmp_path / "q"), "--wiki-dump", str(path), "--sources", "unigram",
                             "--min-unigram-count", "1", "--max-page-chars", "20"]) == 0
    summary = json.loads((tmp_path / "q" / "summary.json").read_text())
    assert summary["read"]["skipped_page_too_large"] == 1 and summary["limits"]["max_page_chars"] == 20
    assert queries_cli.main(["--out", str(tmp_path / "r"), "--wiki-dump", str(path), "--max-page-chars", "0"]) == 2
    assert "--max-page-chars" in capsys.readouterr().err
