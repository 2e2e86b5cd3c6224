"""memberstream: the streaming side. Packages by responsibility (docs/DESIGN.md
section 1): contract, domain, processing, kafka, scoring, worker, tools; and the
CLI (cli.py) and the settings (settings.py)."""
