"""Hook implementations of the ``dydx`` plugin (hooks only; the work lives in sibling modules)."""
