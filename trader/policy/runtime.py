"""The serving-time policy: a small MLP forward pass in numpy, one thread, no torch, no unpickling.

Input: the raw feature values in the bundle's feature order and the current target position. The
runtime normalises with the training window's statistics, clips as the environment does, runs the
layers and returns the index of the best action (argmax of Q-values for DQN, of logits for PPO).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

ACTIVATIONS = ("relu", "tanh", "identity")
OBS_CLIP = 5.0  # the environment's clip (trader.env.OBS_CLIP)


@dataclass(frozen=True)
class Layer:
    weight: NDArray[np.float32]  # (out, in)
    bias: NDArray[np.float32]  # (out,)
    activation: str


class PolicyRuntime:
    """argmax(MLP(clip((x - mean) / std), position))."""

    def __init__(self, layers: list[Layer], mean: NDArray[np.float64], std: NDArray[np.float64],
                 actions: tuple[float, ...]) -> None:
        if not layers:
            raise ValueError("a policy needs at least one layer")
        n_in = layers[0].weight.shape[1]
        if n_in != len(mean) + 1 or len(std) != len(mean):
            raise ValueError(f"the first layer takes {n_in} inputs but there are {len(mean)} features + position")
        for a, b in itertools.pairwise(layers):
            if a.weight.shape[0] != b.weight.shape[1]:
                raise ValueError(f"layer shapes do not chain: {a.weight.shape} then {b.weight.shape}")
        if layers[-1].weight.shape[0] != len(actions):
            raise ValueError(f"the last layer gives {layers[-1].weight.shape[0]} outputs for {len(actions)} actions")
        for layer in layers:
            if layer.activation not in ACTIVATIONS:
                raise ValueError(f"unknown activation {layer.activation!r}")
        self.layers = [Layer(np.ascontiguousarray(lay.weight, np.float32), np.ascontiguousarray(lay.bias, np.float32),
                             lay.activation) for lay in layers]
        self.mean = np.asarray(mean, np.float32)
        self.inv_std = (1.0 / np.asarray(std, np.float64)).astype(np.float32)
        self.actions = tuple(actions)
        self.n_features = len(mean)
        self._x = np.empty(self.n_features + 1, np.float32)
        self._bufs = [np.empty(lay.weight.shape[0], np.float32) for lay in self.layers]

    def scores(self, features: NDArray[np.float64] | list[float], position: float) -> NDArray[np.float32]:
        """Q-values (DQN) or action logits (PPO) for one observation."""
        # in-place ufuncs on preallocated buffers: each numpy call costs about a microsecond here
        x = self._x
        head = x[:-1]
        np.subtract(features, self.mean, out=head, casting="same_kind")
        np.multiply(head, self.inv_std, out=head)
        np.minimum(head, OBS_CLIP, out=head)
        np.maximum(head, -OBS_CLIP, out=head)
        x[-1] = position
        h: NDArray[np.float32] = x
        for layer, buf in zip(self.layers, self._bufs, strict=True):
            np.matmul(layer.weight, h, out=buf)
            buf += layer.bias
            if layer.activation == "relu":
                np.maximum(buf, 0.0, out=buf)
            elif layer.activation == "tanh":
                np.tanh(buf, out=buf)
            h = buf
        return h.copy()

    def act(self, features: NDArray[np.float64] | list[float], position: float) -> int:
        self.scores(features, position)
        return int(self._bufs[-1].argmax())

    def target(self, features: NDArray[np.float64] | list[float], position: float) -> float:
        """The target position (from the action map) the policy picks."""
        return self.actions[self.act(features, position)]

    def act_normalised(self, obs: NDArray[np.float32]) -> int:
        """The action for an environment observation (already normalised, clipped, position last)."""
        h: NDArray[np.float32] = np.asarray(obs, np.float32)
        for layer in self.layers:
            h = layer.weight @ h + layer.bias
            if layer.activation == "relu":
                h = np.maximum(h, 0.0)
            elif layer.activation == "tanh":
                h = np.tanh(h)
        return int(np.argmax(h))
