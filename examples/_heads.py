"""Train one task head on fixed backbone features with plain numpy (full-batch Adam).

Features are standardised for training and the scaling is folded back into the first Dense layer,
so the returned weights apply to the raw backbone output, in Keras ``set_weights`` order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


def train_head(
    features: Array,
    targets: Array,
    *,
    kind: str,
    n_out: int,
    hidden_units: int | None,
    seed: int,
    steps: int = 200,
    learning_rate: float = 0.05,
    weight_decay: float = 1e-4,
    balanced: bool = False,
) -> list[Array]:
    """Return ``[kernel, bias]`` (single Dense) or ``[k1, b1, k2, b2]`` (two layers).

    ``balanced`` weighs examples so that each class of a 0/1 or class-index target counts the
    same (like Keras' ``class_weight="balanced"``), for rare labels such as word mentions.
    """
    x = features.astype(np.float32)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    # Floor the scale: dividing by a near-constant feature's tiny spread would fold huge
    # weights into the saved kernel, an ill-conditioned head that amplifies float32 rounding.
    sd = np.maximum(sd, max(1e-3, 0.1 * float(np.median(sd)))).astype(np.float32)
    # Examples along the last axis: the per-example reductions over a few outputs stay fast.
    z_t = np.ascontiguousarray(((x - mu) / sd).T)
    y_t, y_mu, y_sd = _prepare_targets(targets, kind, n_out)
    weights = _class_balance(targets) if balanced else np.ones(len(x), dtype=np.float32)
    scale = (weights / len(x)).astype(np.float32)
    params = _init(z_t.shape[0], n_out, hidden_units, np.random.default_rng(seed))
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    for step in range(1, steps + 1):
        grads = _gradients(params, z_t, y_t, scale, kind)
        for i, (p, g) in enumerate(zip(params, grads)):
            g = g + weight_decay * p if p.ndim == 2 else g
            m, v = moments[i]
            m = _BETA1 * m + (1 - _BETA1) * g
            v = _BETA2 * v + (1 - _BETA2) * g * g
            moments[i] = (m, v)
            m_hat, v_hat = m / (1 - _BETA1**step), v / (1 - _BETA2**step)
            params[i] = p - learning_rate * m_hat / (np.sqrt(v_hat) + _EPS)
    params[0], params[1] = params[0] / sd[:, None], params[1] - (mu / sd) @ params[0]
    params[-2], params[-1] = params[-2] * y_sd, params[-1] * y_sd + y_mu
    return [p.astype(np.float32) for p in params]


def predict_head(params: list[Array], features: Array, kind: str) -> Array:
    """What the Keras head computes (dropout off), for checks: [n, outputs]."""
    x_t = np.ascontiguousarray(features.T, dtype=np.float32)
    return _activate(_logits(params, x_t)[0], kind).T


def _class_balance(targets: Array) -> Array:
    """Per-example weights (mean 1) that give every class the same total weight."""
    classes = targets.astype(np.int64).reshape(len(targets))
    counts = np.bincount(classes)
    present = counts[counts > 0]
    weights: Array = (len(classes) / (len(present) * counts))[classes]
    return weights.astype(np.float32)


def _prepare_targets(
    targets: Array, kind: str, n_out: int
) -> tuple[Array, Array | float, Array | float]:
    """Targets as [outputs, n], plus the mean and scale to fold back into a linear head."""
    if kind == "softmax":
        one_hot = np.eye(n_out, dtype=np.float32)[targets.astype(np.int64)]
        return np.ascontiguousarray(one_hot.T), 0.0, 1.0
    y = targets.astype(np.float32).reshape(len(targets), n_out)
    if kind == "sigmoid":
        return np.ascontiguousarray(y.T), 0.0, 1.0
    if kind == "linear":
        y_mu, y_sd = y.mean(axis=0), y.std(axis=0)
        y_sd = np.where(y_sd > 1e-6, y_sd, 1.0).astype(np.float32)
        return np.ascontiguousarray(((y - y_mu) / y_sd).T), y_mu, y_sd
    raise ValueError(f"unknown head kind {kind!r}")


def _init(
    n_in: int, n_out: int, hidden_units: int | None, rng: np.random.Generator
) -> list[Array]:
    shapes_scales = (
        [((n_in, n_out), 0.01)]
        if hidden_units is None
        else [((n_in, hidden_units), np.sqrt(2.0 / n_in)),
              ((hidden_units, n_out), np.sqrt(1.0 / hidden_units))]
    )
    params: list[Array] = []
    for shape, scale in shapes_scales:
        params += [rng.normal(0.0, scale, shape).astype(np.float32),
                   np.zeros(shape[1], dtype=np.float32)]
    return params


def _logits(params: list[Array], x_t: Array) -> tuple[Array, Array]:
    """Output pre-activations [outputs, n] and the input of the last layer [units, n]."""
    h_t = x_t
    if len(params) == 4:
        h_t = np.maximum(params[0].T @ x_t + params[1][:, None], 0.0)
    return params[-2].T @ h_t + params[-1][:, None], h_t


def _activate(logits_t: Array, kind: str) -> Array:
    if kind == "softmax":
        e = np.exp(logits_t - logits_t.max(axis=0))
        return np.asarray(e / e.sum(axis=0))
    if kind == "sigmoid":
        return np.asarray(1.0 / (1.0 + np.exp(-logits_t)))
    return logits_t


def _gradients(
    params: list[Array], x_t: Array, y_t: Array, scale: Array, kind: str
) -> list[Array]:
    """Gradients of weighted mean cross-entropy (softmax, sigmoid) or squared error / 2 (linear)."""
    logits_t, h_t = _logits(params, x_t)
    d_out = (_activate(logits_t, kind) - y_t) * scale
    grads = [h_t @ d_out.T, d_out.sum(axis=1)]
    if len(params) == 4:
        d_h = (params[2] @ d_out) * (h_t > 0)
        grads = [x_t @ d_h.T, d_h.sum(axis=1), *grads]
    return grads
