"""Hook implementations of the ``bybit`` plugin (hooks only; the work lives in sibling modules)."""
