"""The only Faust-aware code: the faust.App, the members table, the agent,
tasks and web pages, and the stall watcher; the Worker owns the components."""
