"""PPO over the flow's knobs, in one file that reads top to bottom (after CleanRL's ppo_continuous_action.py).

Args -> vector of FlowEnvs (their evaluations run in parallel through Ray) -> Agent (actor: Gaussian over the
continuous knobs + one categorical per discrete knob; critic: state value) -> loop: collect ``num_steps``
evaluations per env, GAE advantages, clipped-surrogate updates. Budget is counted in flow evaluations, the
expensive unit here, so PPO, random search and TPE are compared at equal cost.

A saved policy (``policy.pt``) carries its knob names and observation size, so it can start the search on
another design (transfer.py): its observations begin with the design's features, which is what lets one
policy behave differently per design.
"""
from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.distributions import Categorical, Normal

from engine.errors import EngineError
from engine.rl.env import FlowVecEnv
from engine.rl.knobs import KnobSpace

log = logging.getLogger(__name__)


@dataclass
class Args:
    seed: int = 1  # seeds torch, numpy and the env resets
    budget: int = 32  # flow evaluations in total (over all envs); the baseline run is not counted
    num_envs: int = 2  # settings evaluated together per step (in parallel when the Evaluator has parallel > 1)
    num_steps: int = 4  # steps per env per rollout (one episode by default)
    learning_rate: float = 3e-3  # Adam step; high because budgets are tens of evaluations, not millions
    gamma: float = 0.5  # discount: an evaluation's value lies mostly in itself, a little in what it leads to
    gae_lambda: float = 0.9  # GAE trade-off between bias and variance
    update_epochs: int = 10  # passes over each rollout (small rollouts: squeeze them)
    clip_coef: float = 0.2  # PPO's surrogate clipping
    ent_coef: float = 0.0  # entropy bonus (exploration comes from the Gaussian's std)
    vf_coef: float = 0.5  # value-loss weight
    max_grad_norm: float = 0.5  # gradient clipping
    norm_adv: bool = True  # normalise advantages per rollout
    hidden: int = 64  # units per hidden layer
    init_log_std: float = -0.7  # initial exploration: std ~0.5 of a knob's half-range
    greedy_first: bool = False  # first action of env 0 is the policy's mode (used when starting from a saved policy)


def layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias)
    return layer


class Agent(nn.Module):
    """Actor-critic over a hybrid action: Gaussian (continuous knobs) x categoricals (discrete knobs)."""

    def __init__(self, obs_dim: int, n_continuous: int, n_choices: list[int], hidden: int = 64,
                 init_log_std: float = -0.7):
        super().__init__()
        self.obs_dim, self.n_continuous, self.n_choices = obs_dim, n_continuous, list(n_choices)
        self.critic = nn.Sequential(layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
                                    layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
                                    layer_init(nn.Linear(hidden, 1), std=1.0))
        self.trunk = nn.Sequential(layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
                                   layer_init(nn.Linear(hidden, hidden)), nn.Tanh())
        # small output init: the first actions sit near the middle of each range, logits near uniform
        self.mean_head = layer_init(nn.Linear(hidden, max(1, n_continuous)), std=0.01)
        self.logit_head = layer_init(nn.Linear(hidden, max(1, sum(self.n_choices))), std=0.01)
        self.log_std = nn.Parameter(torch.full((max(1, n_continuous),), float(init_log_std)))

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)  # (B,)

    def dists(self, obs: torch.Tensor) -> tuple[Normal, list[Categorical]]:
        h = self.trunk(obs)  # (B, H)
        mean = self.mean_head(h)  # (B, C)
        normal = Normal(mean, self.log_std.exp().expand_as(mean))
        logits = self.logit_head(h)  # (B, sum(n_choices))
        cats, start = [], 0
        for n in self.n_choices:
            cats.append(Categorical(logits=logits[:, start:start + n]))
            start += n
        return normal, cats

    def get_action_and_value(self, obs: torch.Tensor, cont: torch.Tensor | None = None,
                             disc: torch.Tensor | None = None, greedy: bool = False):
        """Sample (or score the given) action. Returns cont (B, C), disc (B, D), log-prob (B,), entropy (B,),
        value (B,)."""
        normal, cats = self.dists(obs)
        if cont is None:
            cont = normal.mean if greedy else normal.sample()
            disc = (torch.stack([c.probs.argmax(-1) if greedy else c.sample() for c in cats], dim=-1) if cats
                    else torch.zeros((obs.shape[0], 0), dtype=torch.long))
        assert disc is not None, "an action to score gives both its parts (cont and disc)"
        logp = normal.log_prob(cont)[:, : self.n_continuous].sum(-1)
        entropy = normal.entropy()[:, : self.n_continuous].sum(-1)
        for j, c in enumerate(cats):
            logp = logp + c.log_prob(disc[:, j])
            entropy = entropy + c.entropy()
        return cont, disc, logp, entropy, self.get_value(obs)


def save_policy(agent: Agent, path: Path, knobs: list[str], args: Args, extra: dict | None = None) -> None:
    torch.save({"state_dict": agent.state_dict(), "obs_dim": agent.obs_dim, "n_continuous": agent.n_continuous,
                "n_choices": agent.n_choices, "knobs": list(knobs), "hidden": args.hidden, "args": asdict(args),
                **(extra or {})}, path)


def load_policy(path: str | Path, knobs: list[str], obs_dim: int) -> Agent:
    """A saved policy, checked to fit these knobs and this observation size."""
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"policy file {path} does not exist", hint="train one with `cda optimize ... --agent ppo`")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file
        raise EngineError(f"{path} is not a policy saved by `cda optimize` ({type(exc).__name__})") from None
    if list(blob.get("knobs", [])) != list(knobs) or blob.get("obs_dim") != obs_dim:
        raise EngineError(f"policy {path} was trained for knobs {', '.join(blob.get('knobs', []))}; this search "
                          f"tunes {', '.join(knobs)}", hint="use the same --knobs as the training run")
    agent = Agent(blob["obs_dim"], blob["n_continuous"], blob["n_choices"], hidden=blob.get("hidden", 64))
    agent.load_state_dict(blob["state_dict"])
    return agent


def train(vec: FlowVecEnv, args: Args, agent: Agent | None = None,
          cancelled: Callable[[], bool] = lambda: False,
          on_update: Callable[[dict], None] | None = None) -> Agent:
    """Run PPO for ``args.budget`` evaluations; returns the agent (also when cancelled: what it learned so far)."""
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-unit MLP: more threads only fight the flow's tools for the cores
    try:
        return _train(vec, args, agent, cancelled, on_update)
    finally:
        torch.set_num_threads(threads)


def _train(vec: FlowVecEnv, args: Args, agent: Agent | None, cancelled: Callable[[], bool],
           on_update: Callable[[dict], None] | None) -> Agent:

    env0 = vec.envs[0]
    n_cont, n_choices = env0.n_continuous, KnobSpace(env0.knobs).n_choices
    if agent is None:
        agent = Agent(env0.obs_dim, n_cont, n_choices, args.hidden, args.init_log_std)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    E = vec.num_envs

    next_obs = torch.tensor(vec.reset(seed=args.seed))  # (E, O)
    next_done = torch.zeros(E)
    evaluations, update = 0, 0
    first = args.greedy_first
    while evaluations < args.budget and not cancelled():
        remaining = args.budget - evaluations
        if remaining < E:
            # fewer evaluations left than envs: spend them on the first envs with the current policy
            with torch.no_grad():
                cont, disc, _, _, _ = agent.get_action_and_value(next_obs[:remaining])
            FlowVecEnv(vec.envs[:remaining]).step(
                [{"continuous": cont[i, :n_cont].clamp(-1, 1).numpy(), "discrete": disc[i].numpy()}
                 for i in range(remaining)])
            evaluations += remaining
            break
        # ---- rollout: T steps of E evaluations
        T = min(args.num_steps, remaining // E)
        obs_b = torch.zeros((T, E, env0.obs_dim))
        cont_b = torch.zeros((T, E, agent.mean_head.out_features))
        disc_b = torch.zeros((T, E, len(n_choices)), dtype=torch.long)
        logp_b, rew_b, done_b, val_b = (torch.zeros((T, E)) for _ in range(4))
        steps_done = 0
        for t in range(T):
            if cancelled():
                break
            obs_b[t], done_b[t] = next_obs, next_done
            with torch.no_grad():
                cont, disc, logp, _, value = agent.get_action_and_value(next_obs)
                if first:  # the saved policy's own best guess, once
                    g_cont, g_disc, _, _, _ = agent.get_action_and_value(next_obs[:1], greedy=True)
                    cont[0], disc[0] = g_cont[0], g_disc[0]
                    logp = agent.get_action_and_value(next_obs, cont, disc)[2]
                    first = False
            cont_b[t], disc_b[t], logp_b[t], val_b[t] = cont, disc, logp, value
            actions = [{"continuous": cont[i, :n_cont].clamp(-1, 1).numpy(), "discrete": disc[i].numpy()}
                       for i in range(E)]  # clamped for the env; the raw sample is what the log-prob scores
            obs, reward, done, _ = vec.step(actions)
            evaluations += E
            rew_b[t] = torch.tensor(reward)
            next_obs, next_done = torch.tensor(obs), torch.tensor(done, dtype=torch.float32)
            steps_done += 1
        if steps_done < T or cancelled():
            break  # cancelled mid-rollout: keep the policy as it is
        # ---- advantages (GAE)
        with torch.no_grad():
            next_value = agent.get_value(next_obs)
            adv = torch.zeros_like(rew_b)
            lastgaelam = torch.zeros(E)
            for t in reversed(range(T)):
                nonterminal = 1.0 - (next_done if t == T - 1 else done_b[t + 1])
                nextv = next_value if t == T - 1 else val_b[t + 1]
                delta = rew_b[t] + args.gamma * nextv * nonterminal - val_b[t]
                lastgaelam = delta + args.gamma * args.gae_lambda * nonterminal * lastgaelam
                adv[t] = lastgaelam
            returns = adv + val_b
        # ---- PPO update: the rollout is small, so one minibatch per epoch
        b_obs, b_cont = obs_b.reshape(T * E, -1), cont_b.reshape(T * E, -1)
        b_disc, b_logp = disc_b.reshape(T * E, -1), logp_b.reshape(-1)
        b_adv, b_ret = adv.reshape(-1), returns.reshape(-1)
        for _ in range(args.update_epochs):
            _, _, newlogp, entropy, newvalue = agent.get_action_and_value(b_obs, b_cont, b_disc)
            ratio = (newlogp - b_logp).exp()
            mb_adv = (b_adv - b_adv.mean()) / (b_adv.std() + 1e-8) if args.norm_adv and len(b_adv) > 1 else b_adv
            pg_loss = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
            v_loss = 0.5 * ((newvalue - b_ret) ** 2).mean()
            loss = pg_loss - args.ent_coef * entropy.mean() + args.vf_coef * v_loss
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
            optimizer.step()
        update += 1
        stats = {"update": update, "evaluations": evaluations, "charts/mean_reward": float(rew_b.mean()),
                 "losses/policy": float(pg_loss.detach()), "losses/value": float(v_loss.detach()),
                 "charts/std": float(agent.log_std.detach().exp().mean()), "charts/clipfrac": float(
                     ((ratio.detach() - 1).abs() > args.clip_coef).float().mean())}
        log.info("ppo update %d: %s", update, stats)
        if on_update:
            on_update(stats)
    return agent
