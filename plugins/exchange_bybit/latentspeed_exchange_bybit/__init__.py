"""Bybit v5 for latentspeed: the market-data feed and the execution venue ``bybit``."""
