"""Example strategies (market maker, order-flow-imbalance taker) for latentspeed."""
