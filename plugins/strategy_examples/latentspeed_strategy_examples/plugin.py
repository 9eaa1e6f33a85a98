"""Hook implementations of the ``examples`` plugin (hooks only; the work lives in sibling modules)."""
