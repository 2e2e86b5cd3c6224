"""Scoring members with the served model: what a scorer takes and gives, the
Triton client, and the tensor names of the model signature."""
