"""What outside consumers rely on: topic names, the event and output schemas
(with their JSON Schema files), and the names of the metrics."""
