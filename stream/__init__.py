"""memberstream: the streaming side. Packages by responsibility (docs/DESIGN.md
section 1): contract, domain, scoring, processing, kafka, worker, tools; the
CLI (cli.py), the settings (settings.py) and a memo (memo.py)."""
