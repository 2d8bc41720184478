"""Our MAML inner step against pytorch-maml-rl's, term by term, on one fixed batch of episodes.

    .venv/bin/python benchmarks/maml_reference_step.py [--policy 1|2|FILE.npz] [--task I] [--seed S]
        [--weighting episode|step] [--normalize-weighting episode|step] [--evaluate N] [--json FILE]

Loads a policy trained by pytorch-maml-rl (`../shared/peers/pytorch-maml-rl-2dnav/policy_seed1.npz`
by default; `metarlkit.algos.maml.convert`), plays ONE batch of 20 episodes of `point-navigation`
test task I with our MAML agent (observations, the actions as sampled, rewards and the valid mask
recorded by the agent itself), then takes one inner step of size 0.1 on that batch twice:

  ours       the agent's own `end_episode` (and, for its intermediates, `rl.adaptation.process` /
             `inner_loss`, checked to give the same phi);
  reference  a re-implementation of pytorch-maml-rl's formulas (commit 21d4ba1: `BatchEpisodes`,
             `LinearFeatureBaseline`, `weighted_normalize`, `reinforce_loss`, `NormalMLPPolicy`,
             `Policy.update_params`), written for this script in NumPy (float32, time-major [T, B]
             with T the longest episode, as the reference) and JAX for the loss's gradient, on the
             policy's own (PyTorch) layout. The baseline's normal equations are solved as
             `torch.linalg.lstsq` does on the CPU: LAPACK's gelsy with rcond = eps * size.

It prints the largest difference of every intermediate (baseline values, returns, advantages,
normalised advantages, loss, gradient, adapted parameters) and, to tell the pieces apart, the same
comparison with a float64 least-squares solve on both sides. With `--evaluate N` it also scores
the loaded policy with `metarlkit.evaluate` on the first N test tasks (two rounds of 20 episodes:
before and after one inner step; the agent's seed is --seed). Results: docs/maml-results.md.
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from _report import finish

from metarlkit import evaluate, tasks
from metarlkit.algos.maml import losses
from metarlkit.rl.adaptation_agent import MAMLState, make_agent, record
from metarlkit.algos.maml.convert import load_pytorch_maml_rl
from metarlkit.rl.optim import fit_linear_baseline, linear_baseline_features, linear_baseline_values
from metarlkit.rl.returns import discounted_returns, gae
from metarlkit.tasks.tasksets import env_keys, task_set
from metarlkit.trial import run_trial

# the reference policies beside the checkout (../shared/peers/pytorch-maml-rl-2dnav)
PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "peers", "pytorch-maml-rl-2dnav")
TRAJECTORIES, LR, GAMMA, LAMBDA = 20, 0.1, 0.99, 1.0


def rollout(family, agent, params, task_index: int, seed: int) -> dict[str, np.ndarray]:
    """One round of `TRAJECTORIES` episodes of test task `task_index`, as the agent records it."""
    task = jax.tree_util.tree_map(lambda x: x[0], task_set(family, "test", 1, task_index))
    env_key = env_keys("test", np.array([task_index], np.uint32))[0]
    rec = jax.jit(lambda p, k: run_trial(family, agent, p, task, env_key, k, TRAJECTORIES, record=record))(
        params, jax.random.PRNGKey(seed))
    obs, action = rec.extras
    valid = np.asarray(rec.valid)
    # The agent's buffer holds zeros after an episode's end; so does the reference's padding.
    return {"obs": np.where(valid[..., None], np.asarray(obs), 0.0).astype(np.float32),
            "action": np.where(valid[..., None], np.asarray(action), 0.0).astype(np.float32),
            "reward": np.asarray(rec.reward, np.float32), "valid": valid, "goal": np.asarray(task["goal"]),
            "env_action": np.asarray(rec.action)}


def ours(agent, params, batch, weighting: str, normalize_weighting: str,
         f64_solve: bool = False) -> dict[str, np.ndarray]:
    """Our inner step and its intermediates ([N, H] arrays, episode-major); `normalize_weighting`
    the weighting the advantages are normalised under (the agent's: `weighting`)."""
    ep = losses.Episodes(*(jnp.asarray(batch[k]) for k in ("obs", "action", "reward", "valid")))
    h = ep.reward.shape[-1]
    # The agent's own step: a round's stacked buffers through `end_episode`.
    n = TRAJECTORIES
    state = MAMLState(policy=jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), params),
                      steps_done=jnp.zeros(n, jnp.int32), obs=ep.obs, action=ep.action, reward=ep.reward,
                      valid=ep.valid, t=jnp.zeros(n, jnp.int32), last_obs=ep.obs[:, 0], last_action=ep.action[:, 0])
    phi_agent = agent.end_episode(None, state, 0, jax.random.PRNGKey(0)).policy
    # The same step piece by piece (the functions `process` and `inner_loss` call).
    returns = jax.vmap(lambda r, ok: discounted_returns(r, GAMMA, 0.0, ok))(ep.reward, ep.valid)
    feats = jax.vmap(lambda o, ok: linear_baseline_features(o, ok, h))(ep.obs, ep.valid)
    if f64_solve:
        weights = jnp.asarray(_solve64(np.asarray(feats).reshape(-1, feats.shape[-1])[np.asarray(ep.valid).ravel()],
                                       np.asarray(returns)[np.asarray(ep.valid)]), jnp.float32)
    else:
        weights = fit_linear_baseline(feats, returns, ep.valid)
    values = jnp.where(ep.valid, linear_baseline_values(weights, feats), 0.0)
    raw, _ = jax.vmap(lambda r, v, ok: gae(r, v, GAMMA, LAMBDA, 0.0, ok))(ep.reward, values, ep.valid)
    processed = losses.process(ep, GAMMA, LAMBDA, normalize_weighting)
    if f64_solve:  # what `process` does after its fit, on the float64 baseline's advantages
        mean = losses.step_mean(raw, ep.valid, normalize_weighting)
        scale = jnp.sqrt(losses.step_mean((raw - mean) ** 2, ep.valid, normalize_weighting))
        processed = processed._replace(advantage=jnp.where(ep.valid, (raw - mean) / (scale + 1e-8), 0.0))
    kw = {"estimator": "vpg", "activation": "tanh", "gamma": GAMMA, "weighting": weighting}
    loss, grads = jax.value_and_grad(lambda p: losses.inner_loss(p, processed, **kw))(params)
    phi = jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads)
    out = {"returns": returns, "weights": weights, "values": values, "advantage": raw,
           "normalized": processed.advantage, "loss": loss, "grad": grads, "phi": phi}
    if not f64_solve:
        out["phi_agent"] = phi_agent
    return jax.tree_util.tree_map(np.asarray, out)


def _solve64(x: np.ndarray, y: np.ndarray, reg: float = 1e-5) -> np.ndarray:
    """Ridge weights in float64 (a well-conditioned reference for both sides)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    return np.linalg.solve(x.T @ x + reg * np.eye(x.shape[1]), x.T @ y)


def _to_torch_layout(params: dict) -> dict:
    layers = sum(1 for k in params if k.startswith("w"))
    out = {}
    for i in range(layers):
        name = "mu" if i == layers - 1 else f"layer{i + 1}"
        out[f"{name}.weight"] = jnp.asarray(params[f"w{i}"]).T
        out[f"{name}.bias"] = jnp.asarray(params[f"b{i}"])
    out["sigma"] = jnp.asarray(params["log_std"])
    return out


def _from_torch_layout(tp: dict) -> dict:
    names = sorted(k[:-len(".weight")] for k in tp if k.startswith("layer") and k.endswith(".weight"))
    out = {}
    for i, name in enumerate(sorted(names, key=lambda s: int(s[5:])) + ["mu"]):
        out[f"w{i}"] = np.asarray(tp[f"{name}.weight"]).T
        out[f"b{i}"] = np.asarray(tp[f"{name}.bias"])
    out["log_std"] = np.asarray(tp["sigma"])
    return out


def reference(params: dict, batch, f64_solve: bool = False) -> dict[str, np.ndarray]:
    """pytorch-maml-rl's inner step, re-implemented from its formulas (float32 throughout)."""
    valid = batch["valid"]
    lengths = valid.sum(axis=1)  # [B]
    T = int(lengths.max())  # the batch's time axis is its longest episode
    f32 = np.float32
    obs = np.swapaxes(batch["obs"][:, :T], 0, 1).astype(f32)  # [T, B, 2], zeros after each end
    act = np.swapaxes(batch["action"][:, :T], 0, 1).astype(f32)
    rew = np.swapaxes(batch["reward"][:, :T], 0, 1).astype(f32)
    mask = np.swapaxes(valid[:, :T], 0, 1).astype(f32)
    # BatchEpisodes.returns: R_t = gamma R_{t+1} + r_t m_t, backwards over the whole time axis.
    ret = np.zeros_like(rew)
    acc = np.zeros(rew.shape[1], f32)
    for t in range(T - 1, -1, -1):
        acc = f32(GAMMA) * acc + rew[t] * mask[t]
        ret[t] = acc
    # LinearFeatureBaseline._feature (observations not masked: padding is zero already).
    ones = mask[..., None]
    time_step = np.arange(T, dtype=f32).reshape(-1, 1, 1) * ones / f32(100.0)
    feats = np.concatenate([obs, obs**2, time_step, time_step**2, time_step**3, ones], axis=2)
    F = feats.shape[-1]
    # fit: the valid rows only; (X^T X + reg I) w = X^T y solved as torch.linalg.lstsq (gelsy on
    # the CPU, rcond = eps * max(m, n)); nan / inf solutions retried with reg * 10, 5 times.
    keep = mask.ravel() != 0
    X, y = feats.reshape(-1, F)[keep], ret.reshape(-1, 1)[keep]
    xtx, xty = X.T @ X, X.T @ y
    if f64_solve:
        w = _solve64(X, y[:, 0])
    else:
        reg = 1e-5
        for _ in range(5):
            try:
                w = scipy.linalg.lstsq(xtx + f32(reg) * np.eye(F, dtype=f32), xty, lapack_driver="gelsy",
                                       cond=np.finfo(f32).eps * F, check_finite=False)[0][:, 0]
                if np.all(np.isfinite(w)):
                    break
                raise np.linalg.LinAlgError
            except (np.linalg.LinAlgError, ValueError):
                reg *= 10
        else:
            raise RuntimeError("the reference baseline found no finite solution")
    w = w.astype(f32)
    values = (feats.reshape(-1, F) @ w).reshape(T, -1)
    # compute_advantages: values masked and padded with a 0 after the last step; GAE over all T.
    v = np.concatenate([values * mask, np.zeros((1, values.shape[1]), f32)], axis=0)
    deltas = rew + f32(GAMMA) * v[1:] - v[:-1]
    adv = np.zeros_like(rew)
    acc = np.zeros(rew.shape[1], f32)
    for t in range(T - 1, -1, -1):
        acc = acc * f32(GAMMA * LAMBDA) + deltas[t]
        adv[t] = acc
    # weighted_normalize(adv, lengths): centre on the mean of the per-episode means, scale by the
    # square root of the mean over episodes of each episode's mean square.
    adv = adv * mask  # weighted_mean zeroes each column after its length (in place)
    centred = (adv - (adv.sum(0) / lengths).mean()) * mask
    std = np.sqrt(((centred**2).sum(0) / lengths).mean())
    normalized = centred / (std + f32(1e-8))

    tp = _to_torch_layout(params)
    layers = sum(1 for k in tp if k.startswith("layer") and k.endswith(".weight"))

    def loss_fn(tp):
        h = jnp.asarray(obs)
        for i in range(1, layers + 1):
            h = jnp.tanh(h @ tp[f"layer{i}.weight"].T + tp[f"layer{i}.bias"])
        mu = h @ tp["mu.weight"].T + tp["mu.bias"]
        log_std = jnp.maximum(tp["sigma"], np.log(1e-6))
        z = (jnp.asarray(act) - mu) / jnp.exp(log_std)
        logp = jnp.sum(-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi), axis=-1)  # Independent(Normal, 1)
        per_episode = jnp.sum(logp * normalized * mask, axis=0) / lengths  # weighted_mean(..., lengths)
        return -jnp.mean(per_episode)

    loss, grads = jax.value_and_grad(loss_fn)(tp)
    phi = {k: tp[k] - LR * grads[k] for k in tp}  # Policy.update_params: theta - step_size * grad
    back = lambda a: np.swapaxes(np.pad(np.asarray(a), ((0, valid.shape[1] - T), (0, 0))), 0, 1)  # noqa: E731
    return {"returns": back(ret), "weights": w, "values": back(values * mask), "advantage": back(adv),
            "normalized": back(normalized), "loss": np.asarray(loss), "grad": _from_torch_layout(grads),
            "phi": _from_torch_layout(phi)}


def _max_abs(a, b) -> float:
    leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x, y: float(np.max(np.abs(x - y))), a, b))
    return max(leaves)


def _rel(a, b) -> float:
    fa = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(a)]).astype(np.float64)
    fb = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(b)]).astype(np.float64)
    return float(np.linalg.norm(fa - fb) / max(np.linalg.norm(fb), 1e-30))


def compare(mine, ref) -> dict[str, float]:
    rows = {}
    for key in ("returns", "weights", "values", "advantage", "normalized"):
        rows[key] = _max_abs(mine[key], ref[key])
    rows["loss"] = float(abs(mine["loss"] - ref["loss"]))
    rows["grad"] = _max_abs(mine["grad"], ref["grad"])
    rows["grad_rel"] = _rel(mine["grad"], ref["grad"])
    rows["phi"] = _max_abs(mine["phi"], ref["phi"])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="1", help="1 or 2 (the reference's training seed) or an .npz path")
    parser.add_argument("--task", type=int, default=0, help="index of the point-navigation test task")
    parser.add_argument("--seed", type=int, default=0, help="the agent's sampling seed")
    parser.add_argument("--weighting", default="episode", choices=("episode", "step"),
                        help="our losses' weighting (pytorch-maml-rl: episode)")
    parser.add_argument("--normalize-weighting", choices=("episode", "step"),
                        help="normalise our advantages under this weighting instead of --weighting's "
                             "('step' with --weighting episode: this library before the fix of issue 23)")
    parser.add_argument("--evaluate", type=int, default=0, metavar="N",
                        help="also score the policy on N test tasks before and after one inner step")
    parser.add_argument("--json")
    args = parser.parse_args()
    path = args.policy if args.policy.endswith(".npz") else os.path.join(PEERS, f"policy_seed{args.policy}.npz")
    params = load_pytorch_maml_rl(path)
    family = tasks.make("point-navigation")
    agent = make_agent(obs_size=2, num_actions=2, horizon=family.horizon, continuous=True, activation="tanh",
                       trajectories=TRAJECTORIES, inner_lrs=(LR,), inner_estimator="vpg", gamma=GAMMA,
                       gae_lambda=LAMBDA, action_bounds=family.action_box(), weighting=args.weighting,
                       normalize_actions=False)
    batch = rollout(family, agent, params, args.task, args.seed)
    lengths = batch["valid"].sum(1)
    clipped = float(np.mean(np.abs(batch["action"][batch["valid"]]) > 0.1))
    print(f"policy {path}; test task {args.task}, goal {np.round(batch['goal'], 4).tolist()}; "
          f"{TRAJECTORIES} episodes, lengths min {lengths.min()} mean {lengths.mean():.1f} max {lengths.max()}; "
          f"recorded actions outside the clip box: {clipped:.1%} (stored unclipped: "
          f"{np.array_equal(batch['action'][batch['valid']], batch['env_action'][batch['valid']])})")
    norm_w = args.normalize_weighting or args.weighting
    mine, ref = ours(agent, params, batch, args.weighting, norm_w), reference(params, batch)
    if norm_w == args.weighting:
        print(f"our agent's end_episode vs. our pieces: max |dphi| {_max_abs(mine['phi_agent'], mine['phi']):.2e}")
    print(f"baseline weights  ours {np.round(mine['weights'], 3).tolist()}\n"
          f"                  ref  {np.round(ref['weights'], 3).tolist()}")
    rows = []
    for name, (a, b) in {"float32 solve (as each code does)": (mine, ref),
                         "float64 ridge solve on both sides": (ours(agent, params, batch, args.weighting, norm_w, True),
                                                               reference(params, batch, True))}.items():
        diff = compare(a, b)
        rows.append({"setting": name, **{k: float(f"{v:.3g}") for k, v in diff.items()}})
        print(f"\n{name}: max |ours - reference|")
        for key, value in diff.items():
            print(f"  {key:11s} {value:.3e}")
        print(f"  loss        ours {float(a['loss']):.6f}  reference {float(b['loss']):.6f}")
    scores = {}
    if args.evaluate:
        result = evaluate(agent, family, params, num_episodes=2 * TRAJECTORIES, num_tasks=args.evaluate, split="test",
                          seed=args.seed, name=f"maml:{os.path.basename(path)}")
        steps = result.summary()["return_after_steps"]
        scores = {"before": steps[0], "after_one_step": steps[1]}
        print(f"\nevaluate, {args.evaluate} test tasks x {TRAJECTORIES} episodes per round: before "
              f"{steps[0]['mean']:.2f} +- {steps[0]['ci95']:.2f}, after one step {steps[1]['mean']:.2f} +- "
              f"{steps[1]['ci95']:.2f}")
    finish(rows, args.json, scores=scores, policy=path, task=args.task, seed=args.seed, weighting=args.weighting,
           normalize_weighting=norm_w, lengths=lengths.tolist())


if __name__ == "__main__":
    main()
