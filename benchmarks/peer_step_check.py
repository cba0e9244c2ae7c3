"""Step-for-step check that d3rlpy 2.8.0's TD3+BC update computes what offrl's `agents.td3bc`
update computes.

Both learners start from the same weights (offrl's initial actor, twin critics and targets
copied into d3rlpy's torch modules), see the same batches and the same target-smoothing noise,
and run in float64, so any difference in their rules (critic target, loss reduction, lambda, BC
term, Adam, polyak, actor schedule) shows as a gap far above float64 rounding. It prints the
largest parameter and loss gaps after chosen steps.

Actor schedule: offrl moves the actor when its step counter, incremented before the test, is
even (its 2nd, 4th, ... update, as sfujim/TD3_BC's `total_it`); d3rlpy's `fit` passes
`grad_step` starting at 0 and moves the actor when `grad_step % 2 == 0` (its 1st, 3rd, ...
update). Here d3rlpy is given grad_step = offrl's 1-based step so both move on even steps.

    python -m benchmarks.peer_step_check [--steps 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import types
from collections.abc import Iterator, Sequence
from typing import Any

import jax

# Before any array is made: offrl's update must run in float64 like the torch side.
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from agents import td3bc  # noqa: E402
from benchmarks.peer_learner import import_d3rlpy, peer_config  # noqa: E402
from offrl.agent import DatasetSpec  # noqa: E402
from offrl.data.transitions import Transitions  # noqa: E402

OBS_DIM, ACTION_DIM, BATCH = 11, 3, 256  # hopper's shapes
TASK = "offrl/hopper/medium-v0"  # TD3+BC has one config for every task
REPORT_STEPS = (1, 2, 10, 50, 200)
LAYERS = ("TorchDense_0", "TorchDense_1", "TorchDense_2")
TORCH_LAYERS = ("_encoder._layers.0", "_encoder._layers.2", "_fc")


def d3rlpy_learner() -> tuple[td3bc.Config, Any]:
    """offrl's TD3+BC config and d3rlpy's TD3PlusBC with the fields `offrl peer` gives it (one
    config for every task), no observation scaler (the batches are already normalised)."""
    config, fields = peer_config("td3bc", TASK)
    algo = import_d3rlpy().algos.TD3PlusBCConfig(**fields).create(device=False)
    algo.create_impl((OBS_DIM,), ACTION_DIM)
    return config, algo


def to_float64(model):
    """A TargetTrainState in float64, with a fresh (all-zero) Adam state of that dtype."""
    params = jax.tree.map(lambda p: p.astype(jnp.float64), model.params)
    target = jax.tree.map(lambda p: p.astype(jnp.float64), model.target_params)
    return model.replace(params=params, target_params=target, opt_state=model.tx.init(params))


def mlp_layers(params: dict, member: int | None) -> dict[str, np.ndarray]:
    """offrl's MLP parameters as a torch state dict ((in, out) kernels -> (out, in) weights);
    `member` picks one critic of the vmapped ensemble (parameter axis 0)."""
    mlp = params["params"]["MLP_0"] if member is None else params["params"]["VmapCritic_0"]["MLP_0"]
    out = {}
    for ours, theirs in zip(LAYERS, TORCH_LAYERS, strict=True):
        kernel, bias = mlp[ours]["kernel"], mlp[ours]["bias"]
        if member is not None:
            kernel, bias = kernel[member], bias[member]
        out[f"{theirs}.weight"] = np.asarray(kernel).T
        out[f"{theirs}.bias"] = np.asarray(bias)
    return out


def torch_state(params: dict, critic: bool) -> dict[str, torch.Tensor]:
    """State dict for d3rlpy's policy (critic=False) or its 2-critic ModuleList."""
    if not critic:
        return {k: torch.from_numpy(v.copy()) for k, v in mlp_layers(params, None).items()}
    return {
        f"{m}.{k}": torch.from_numpy(v.copy())
        for m in range(2)
        for k, v in mlp_layers(params, m).items()
    }


def copy_into_d3rlpy(state: td3bc.State, modules) -> None:
    """offrl's actor, critics and both targets into d3rlpy's modules, in place (same Parameter
    objects, so d3rlpy's optimisers keep holding them)."""
    modules.policy.load_state_dict(torch_state(state.actor.params, False))
    modules.targ_policy.load_state_dict(torch_state(state.actor.target_params, False))
    modules.q_funcs.load_state_dict(torch_state(state.critic.params, True))
    modules.targ_q_funcs.load_state_dict(torch_state(state.critic.target_params, True))


def max_gap(params: dict, module: torch.nn.Module, critic: bool) -> float:
    """Largest |offrl - d3rlpy| over every parameter of one network."""
    ours = torch_state(params, critic)
    theirs = module.state_dict()
    return max(float((ours[k] - theirs[k]).abs().max()) for k in ours)


def output_gaps(state: td3bc.State, modules, batch: dict[str, np.ndarray]) -> tuple[float, float]:
    """Largest |offrl - d3rlpy| of both critics' Q(s, a) and of pi(s) on one batch."""
    obs, act = batch["observations"], batch["actions"]
    ours_q = np.asarray(state.critic.apply_fn(state.critic.params, obs, act))
    ours_pi = np.asarray(td3bc.act(state, jnp.asarray(obs)))
    tobs, tact = torch.from_numpy(obs), torch.from_numpy(act)
    with torch.no_grad():
        theirs_q = np.stack([q(tobs, tact).q_value[:, 0].numpy() for q in modules.q_funcs])
        theirs_pi = modules.policy(tobs).squashed_mu.numpy()
    return float(np.abs(ours_q - theirs_q).max()), float(np.abs(ours_pi - theirs_pi).max())


def make_batch(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A float64 batch of already-normalised states, actions in [-1, 1], a few terminals."""
    return {
        "observations": rng.standard_normal((BATCH, OBS_DIM)),
        "actions": rng.uniform(-1.0, 1.0, (BATCH, ACTION_DIM)),
        "rewards": rng.uniform(0.0, 3.0, BATCH),
        "next_observations": rng.standard_normal((BATCH, OBS_DIM)),
        "dones": (rng.uniform(size=BATCH) < 0.02).astype(np.float64),
    }


def torch_batch(batch: dict[str, np.ndarray]):
    """d3rlpy's TorchMiniBatch built by hand in float64 (its from_batch would give float32)."""
    from d3rlpy.torch_utility import TorchMiniBatch

    t = {k: torch.from_numpy(v) for k, v in batch.items()}
    column = torch.ones(BATCH, 1, dtype=torch.float64)
    return TorchMiniBatch(
        observations=t["observations"],
        actions=t["actions"],
        rewards=t["rewards"].reshape(-1, 1),
        next_observations=t["next_observations"],
        next_actions=torch.zeros_like(t["actions"]),
        returns_to_go=torch.zeros_like(column),
        terminals=t["dones"].reshape(-1, 1),
        intervals=column,  # gamma ** 1
        device="cpu:0",
    )


@contextlib.contextmanager
def d3rlpy_noise(noise: np.ndarray) -> Iterator[None]:
    """Make `torch.randn` inside d3rlpy's TD3Impl.compute_target return offrl's noise."""
    from d3rlpy.algos.qlearning.torch import td3_impl

    def randn(shape, **kwargs) -> torch.Tensor:
        assert tuple(shape) == noise.shape, (shape, noise.shape)
        return torch.from_numpy(noise.copy())

    # A stand-in for the `torch` that td3_impl sees, so no other caller of torch.randn changes.
    proxy = types.ModuleType("torch_with_offrl_noise")
    proxy.__getattr__ = lambda name: getattr(torch, name)
    proxy.randn = randn
    td3_impl.torch = proxy
    try:
        yield
    finally:
        td3_impl.torch = torch


GAP_COLUMNS = ("critic", "actor", "targ_critic", "targ_actor", "critic_loss", "actor_loss")


def gaps(steps: int, seed: int, report: Sequence[int] = REPORT_STEPS) -> Iterator[tuple[int, dict]]:
    """(step, largest |offrl - d3rlpy| per GAP_COLUMNS entry, and d3rlpy's critic loss) after each
    step in `report` and the last; step 0: the Q and action gaps before any update."""
    config, algo = d3rlpy_learner()
    state = td3bc.init(jax.random.PRNGKey(seed), DatasetSpec(OBS_DIM, ACTION_DIM), config)
    state = state.replace(actor=to_float64(state.actor), critic=to_float64(state.critic))
    modules = algo.impl._modules
    copy_into_d3rlpy(state, modules)
    for module in (modules.policy, modules.targ_policy, modules.q_funcs, modules.targ_q_funcs):
        module.double()  # in place: the optimisers still hold these Parameters

    rng = np.random.default_rng(seed)
    q_gap, a_gap = output_gaps(state, modules, make_batch(rng))
    yield 0, {"q": q_gap, "action": a_gap}
    update = jax.jit(td3bc.update)
    base_key = jax.random.PRNGKey(seed + 1)
    for step in range(1, steps + 1):
        batch = make_batch(rng)
        key = jax.random.fold_in(base_key, step)
        # offrl's smoothed_target_actions draws normal(key, (B, action_dim)) from the key
        # td3bc.update passes straight to update_critic: the same draw goes to d3rlpy.
        noise = np.asarray(jax.random.normal(key, (BATCH, ACTION_DIM), jnp.float64))
        state, ours = update(
            state, Transitions(**{k: jnp.asarray(v) for k, v in batch.items()}), key, None
        )
        with d3rlpy_noise(noise):
            theirs = algo.impl.update(torch_batch(batch), step)
        if step not in report and step != steps:
            continue
        # d3rlpy sums the members' losses into a float32 tensor (compute_ensemble_q_function_error,
        # td_sum), so its reported critic loss is float32-rounded; its gradient is not.
        yield (
            step,
            {
                "critic": max_gap(state.critic.params, modules.q_funcs, True),
                "actor": max_gap(state.actor.params, modules.policy, False),
                "targ_critic": max_gap(state.critic.target_params, modules.targ_q_funcs, True),
                "targ_actor": max_gap(state.actor.target_params, modules.targ_policy, False),
                "critic_loss": abs(float(np.float32(ours["critic_loss"])) - theirs["critic_loss"]),
                "actor_loss": (
                    abs(float(ours["actor_loss"]) - theirs["actor_loss"])
                    if "actor_loss" in theirs
                    else float("nan")  # neither side moved the actor this step
                ),
                "d3rlpy_critic_loss": theirs["critic_loss"],
            },
        )


def check(steps: int, seed: int) -> None:
    """Print `gaps`."""
    for step, gap in gaps(steps, seed):
        if step == 0:
            print(
                f"before any update: max |Q gap| {gap['q']:.2e}, "
                f"max |action gap| {gap['action']:.2e}"
            )
            print("actor steps: offrl at its step counter % 2 == 0 (steps 2, 4, ...); d3rlpy given")
            print("grad_step = that step, so also 2, 4, ... (d3rlpy's own fit would use 1, 3, ...)")
            print(
                "max |offrl - d3rlpy| of the parameters and losses (critic loss rounded to float32)"
            )
            print("step  " + " ".join(f"{name:11s}" for name in GAP_COLUMNS))
            continue
        row = " ".join(f"{gap[name]:.2e}   " for name in GAP_COLUMNS)
        print(f"{step:4d}  {row} (critic loss {gap['d3rlpy_critic_loss']:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    check(args.steps, args.seed)


if __name__ == "__main__":
    main()
