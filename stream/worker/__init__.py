"""The only Faust-aware code (besides the Faust patch among the broker's
workarounds, stream/kafka/tansu.py): the faust.App, the members table, the
agent, tasks and web pages, and the stall watcher; the Worker owns the
components."""
