"""archir's built-in passes. Importing this package registers them with the pass manager.

Adding a pass: one file here that uses `@register_pass`, and one line in `_MODULES`.
"""

from importlib import import_module

from archir.pass_manager import register_alias

_MODULES = [
    "dce",
    "cse",
    "fold_constants",
    "simplify",
    "specialize_shapes",
    "plan_memory",
    "fuse_attention",
    "fuse_epilogue",
    "fuse_reductions",
    "fuse_elementwise",
    "fold_layout",
]

for _name in _MODULES:
    import_module(f"archir.passes.{_name}")

register_alias("canonicalize", "simplify,fold-constants,cse,dce")
# Most specific first: attention patterns need their softmax unfused, epilogues claim the
# residual add before a norm does, views fold last into whatever groups exist.
register_alias("fuse", "fuse-attention,fuse-epilogue,fuse-reductions,fuse-elementwise,fold-layout")
