"""The processing core, Faust-free and broker-free: the batch processor, the
pending-scoring queue, the ordered decisions, the input cursor and its intake,
recovery from the store, the commit protocol, and every internal key."""
