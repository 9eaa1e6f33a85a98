"""Binance spot and USD-M futures market-data feed for latentspeed."""
