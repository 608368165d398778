"""Export a trained stable-baselines3 policy to plain layers (the bundle's weights.bin).

DQN: the online Q-network (Linear/ReLU stack). PPO: the actor only (policy MLP and action head); its
deterministic action is the argmax of the logits. The value network is not needed to act.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trader.policy.runtime import Layer


def _sequential_layers(modules: Any) -> list[Layer]:
    import torch.nn as nn

    layers: list[Layer] = []
    for module in modules:
        if isinstance(module, nn.Linear):
            layers.append(Layer(module.weight.detach().cpu().numpy().astype(np.float32),
                                module.bias.detach().cpu().numpy().astype(np.float32), "identity"))
        elif isinstance(module, nn.ReLU | nn.Tanh):
            if not layers or layers[-1].activation != "identity":
                raise ValueError(f"activation {module} does not follow a linear layer")
            last = layers[-1]
            layers[-1] = Layer(last.weight, last.bias, "relu" if isinstance(module, nn.ReLU) else "tanh")
        elif isinstance(module, nn.Flatten | nn.Identity):
            continue
        else:
            raise ValueError(f"cannot export a {type(module).__name__} layer; only Linear, ReLU and Tanh")
    return layers


def layers_from_model(model: Any, algo: str) -> list[Layer]:
    """The layers of ``model``'s deterministic action path."""
    if algo == "dqn":
        return _sequential_layers(model.q_net.q_net)
    if algo == "ppo":
        policy = model.policy
        return _sequential_layers(policy.mlp_extractor.policy_net) + _sequential_layers([policy.action_net])
    raise ValueError(f"unknown algorithm {algo!r}; choose dqn or ppo")
