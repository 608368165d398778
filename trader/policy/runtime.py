"""The serving-time policy: a small MLP forward pass in numpy, one thread, no torch, no unpickling.

Input: the raw feature values in the bundle's feature order and the current target position. The
runtime normalises with the training window's statistics, clips as the environment does, runs the
layers and returns the index of the best action (argmax of Q-values for DQN, of logits for PPO).

Serving folds the work into as few numpy calls as possible (each costs about a microsecond here):
clipping the normalised value to +-OBS_CLIP equals clipping the raw value to mean +- OBS_CLIP * std,
so the normalisation folds into the first layer's weights and bias, and every bias rides in its
weight matrix against a constant 1 at the end of the layer's input. In float64, so the folded
arithmetic stays far inside the float32 network's own rounding.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Features = NDArray[np.float64] | Sequence[float]  # raw values in the bundle's feature order
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
        self.actions = tuple(actions)
        self.n_features = n = len(mean)
        # the folded network (see the module's text), from the statistics as the float32 bundle holds them
        mean64 = np.asarray(mean, np.float32).astype(np.float64)
        inv64 = (1.0 / np.asarray(std, np.float64)).astype(np.float32).astype(np.float64)
        self._lo = mean64 - OBS_CLIP / inv64
        self._hi = mean64 + OBS_CLIP / inv64
        self._x = np.ones(n + 2, np.float64)  # raw features (clipped in place), position, 1
        self._w: list[NDArray[np.float64]] = []
        self._out: list[NDArray[np.float64]] = []  # each layer's output, then a constant 1 (not for the last)
        for i, lay in enumerate(self.layers):
            weight, bias = lay.weight.astype(np.float64), lay.bias.astype(np.float64)
            if i == 0:
                w_feat = weight[:, :n] * inv64
                weight = np.c_[w_feat, weight[:, n]]
                bias = bias - w_feat @ mean64
            self._w.append(np.ascontiguousarray(np.c_[weight, bias]))
            buf = np.ones(weight.shape[0] + (i < len(self.layers) - 1), np.float64)
            self._out.append(buf)
        self._views = [buf[:lay.weight.shape[0]] for buf, lay in zip(self._out, self.layers, strict=True)]
        self._acts = [lay.activation for lay in self.layers]

    def scores(self, features: Features, position: float) -> NDArray[np.float64]:
        """Q-values (DQN) or action logits (PPO) for one observation."""
        return self._forward(features, position).copy()

    def _forward(self, features: Features, position: float) -> NDArray[np.float64]:
        """The last layer's output, in a buffer the next call overwrites."""
        x = self._x
        head = x[:self.n_features]
        np.minimum(features, self._hi, out=head)
        np.maximum(head, self._lo, out=head)
        x[self.n_features] = position
        h = x
        for w, out, view, act in zip(self._w, self._out, self._views, self._acts, strict=True):
            w.dot(h, out=view)  # half the overhead of np.matmul for a matrix-vector product this small
            if act == "relu":
                np.maximum(view, 0.0, out=view)
            elif act == "tanh":
                np.tanh(view, out=view)
            h = out
        return self._views[-1]

    def act(self, features: Features, position: float) -> int:
        return int(self._forward(features, position).argmax())

    def target(self, features: Features, position: float) -> float:
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
