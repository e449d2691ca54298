"""The built-in op set. Each module registers one family of ops with `define_op`."""

from archir.ops import (  # noqa: F401
    control,
    elementwise,
    fusion,
    indexing,
    linalg,
    nn,
    reduction,
    shape,
)
