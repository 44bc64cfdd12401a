"""openwit.demo: the embedded demo behind `make demo` (`python -m openwit.demo --out DIR`).

Modules: run (the steps and the CLI), wiki (a small Wikipedia dump + pageviews generated from
WordNet), web (generated images served on 127.0.0.1, with a url+caption table).
"""
