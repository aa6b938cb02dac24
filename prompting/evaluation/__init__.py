"""How well the reward stack ranks answers: the adversarial line-up (an honest model
beside cheap strategies) and ranking fidelity (a graded honest line-up). A layer above
``rewards`` and ``miner``: the benchmark and its regression tests use it, the validator
does not."""
