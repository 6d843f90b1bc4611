"""The MNIST instance: data, the authors' published invariance examples, invariance attacks.

* :mod:`simulations.mnist.data` -- locate, download and verify the MNIST IDX files.
* :mod:`simulations.mnist.published` -- the released human-labelled invariance examples.
* :mod:`simulations.mnist.alignment` -- exact aligned nearest-neighbour search (l-inf step 1).
* :mod:`simulations.mnist.linf_attack` -- the model-free l-inf invariance attack.
* :mod:`simulations.mnist.runner`, :mod:`simulations.mnist.grid` -- resumable batch runs
  saved as ``.npz`` + PNG grid, shared by all attacks.
* :mod:`simulations.mnist.cli` -- the ``tradeoffs mnist ...`` commands.
"""
