"""Hook implementations of the ``mock`` plugin (hooks only; the work lives in sibling modules)."""
