"""PEARL: off-policy meta-RL with a probabilistic task context (Rakelly et al. 2019).

Built so far: the context posterior (`context`), the posterior-sampling agent (`agent`) and the
configuration with oyster's settings (`config`). Training is not built yet, so the algorithm is
not registered."""
