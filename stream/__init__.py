"""memberstream: the streaming side (Faust app, state, policies, CLI)."""
