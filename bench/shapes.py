"""The standard benchmark shapes (DESIGN.md, issue 5): batch-first, float32, LSTM and GRU.

Every system in the benchmark (fastrnn's backends, PyTorch, ONNX Runtime) runs on the arrays made
here, so the comparison is on identical inputs, targets and weights.
"""
from dataclasses import dataclass

import numpy as np

CELLS = ("lstm", "gru")
MODES = ("inference", "training")
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


@dataclass(frozen=True)
class Shape:
    """One benchmark problem: batch ``B``, steps ``T``, input features ``I``, hidden ``H``."""

    name: str
    B: int
    T: int
    I: int
    H: int
    layers: int = 1

    def label(self):
        return f"B{self.B} T{self.T} I{self.I} H{self.H}" + (f" L{self.layers}" if self.layers > 1 else "")


SHAPES = {
    s.name: s
    for s in (
        Shape("small", B=64, T=50, I=8, H=64),
        Shape("medium", B=64, T=100, I=64, H=256, layers=2),
        Shape("large", B=32, T=50, I=512, H=512),
        Shape("infer_batch", B=1024, T=100, I=16, H=128),
        Shape("latency_b1", B=1, T=100, I=16, H=128),
    )
}

# Peak-memory problem of issue 5: one training step on a long sequence.
MEMORY_SHAPE = Shape("memory", B=32, T=2000, I=16, H=128)


def make_inputs(shape, seed=0):
    """Return ``(x (B, T, I) float32, y (B, 1) float32)``: standard-normal inputs, regression targets."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((shape.B, shape.T, shape.I)).astype(np.float32)
    y = rng.standard_normal((shape.B, 1)).astype(np.float32)
    return x, y


def forward_flops(shape, cell):
    """Multiply-adds x2 of one forward pass: ``2*T*B*G*H*(I_l+H)`` summed over layers.

    ``I_l`` is ``I`` for the first layer and ``H`` above it (unidirectional stacks). The gate
    element-wise work is not counted: this is the GEMM work that the sgemm roofline bounds.
    """
    total = 0
    for layer in range(shape.layers):
        inputs = shape.I if layer == 0 else shape.H
        total += 2 * shape.T * shape.B * GATES[cell] * shape.H * (inputs + shape.H)
    return total


def step_flops(shape, cell, mode):
    """FLOPs of one call: the forward; for a training step also the backward GEMMs.

    The backward repeats each layer's products twice (the weight gradients, and the gradients sent
    to the previous step and the layer below), except the bottom layer's input gradient: the inputs
    are data, so neither fastrnn (``need_input_grad=False``) nor PyTorch (no ``requires_grad``)
    needs it. So a training step is ``3 * forward - 2*T*B*G*H*I``.
    """
    forward = forward_flops(shape, cell)
    if mode != "training":
        return forward
    return 3 * forward - 2 * shape.T * shape.B * GATES[cell] * shape.H * shape.I
