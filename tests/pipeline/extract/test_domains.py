"""--exclude-domains: the block list's lines, and which image URLs it drops (pure functions)."""
import pytest

from openwit.common.errors import UserError
from openwit.pipeline.extract import ExtractRules, candidate
from openwit.pipeline.extract.domains import is_excluded, parse_domain_list, read_domain_list, url_host
from openwit.pipeline.extract.html_page import RawImage

LIST = """# domains we leave out
Example.COM
*.cdn.example.net   # every sub-domain
https://Photos.Example.org:8443/gallery/
.bücher.de
10.0.0.7

"""


def test_lines_are_normalised():
    assert parse_domain_list(LIST) == ["10.0.0.7", "cdn.example.net", "example.com", "photos.example.org",
                                       "xn--bcher-kva.de"]
    with pytest.raises(UserError, match=r"line 2: 'not a domain' is not a domain"):
        parse_domain_list("ok.com\nnot a domain\n")


def test_a_domain_blocks_itself_and_its_sub_domains_only():
    blocked = frozenset(parse_domain_list(LIST))
    for url in ("http://example.com/a.jpg", "https://img.EXAMPLE.com./a.jpg", "http://a.b.cdn.example.net/x",
                "https://photos.example.org/x.png", "http://shop.bücher.de/x.jpg", "http://10.0.0.7:8080/x"):
        assert is_excluded(url_host(url), blocked), url
    for url in ("http://badexample.com/a.jpg", "http://example.com.evil.net/a.jpg", "http://example.org/x",
                "http://cdn.example.net.au/x", "http://10.0.0.70/x", "not a url"):
        assert not is_excluded(url_host(url), blocked), url


def test_rules_decide_a_record():
    rules = ExtractRules(min_caption_chars=5, max_caption_chars=12, exclude_domains=frozenset({"example.com"}))
    raw = lambda url, text: RawImage(url=url, text=text, page_url=None, reason=None)  # noqa: E731
    assert candidate(raw("http://img.example.com/a.jpg", "a red car"), "f", rules) == (None, "excluded_domain")
    assert candidate(raw("http://other.org/a.jpg", "a car"), "f", rules)[0] is not None  # 5 chars: kept
    assert candidate(raw("http://other.org/a.jpg", "car"), "f", rules) == (None, "too_short")
    assert candidate(raw("http://other.org/a.jpg", "a red car on a road"), "f", rules) == (None, "too_long")
    assert candidate(raw("http://other.org/a.jpg", "car"), "f")[0] is not None  # the defaults: 3 … 1000


def test_missing_list_is_one_line(tmp_path):
    with pytest.raises(UserError, match=r"block.txt: no such --exclude-domains file$"):
        read_domain_list(str(tmp_path / "block.txt"))
