"""Scoring members with the served model: the Triton client and the tensor
names of the model signature."""
