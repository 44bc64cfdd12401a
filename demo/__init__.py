"""openwit.demo: the embedded demo behind `make demo` (`python -m openwit.demo --out DIR`).

Modules: run (the steps and the CLI), wiki (a small Wikipedia dump + pageviews generated from
WordNet), draw (the pictures: drawn shapes with alt texts, photos from installed packages,
held-out sets), site (the web site's pages and files), web (the loopback proxy that serves them,
with opt-outs, slow and broken answers), crawl (pages → a WARC), train (openwit-train and
openwit-eval on the shards, the results table).
"""
