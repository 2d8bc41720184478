"""PEARL: off-policy meta-RL with a probabilistic task context (Rakelly et al. 2019).

Built so far: the context posterior (`context`). The algorithm is not registered yet."""
