"""Hook implementations of the ``binance`` plugin (hooks only; the work lives in sibling modules)."""
