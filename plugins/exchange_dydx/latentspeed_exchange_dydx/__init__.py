"""dYdX v4 indexer market-data feed for latentspeed."""
