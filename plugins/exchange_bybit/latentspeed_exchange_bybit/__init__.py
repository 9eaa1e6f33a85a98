"""Bybit v5 market-data feed for latentspeed."""
