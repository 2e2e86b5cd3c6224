"""Offline evaluation against baselines and published references (docs/model.md)."""
