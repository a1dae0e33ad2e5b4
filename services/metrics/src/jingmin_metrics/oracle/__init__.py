"""The oracle: every figure recomputed from the event stores with SQL, and the comparison."""
