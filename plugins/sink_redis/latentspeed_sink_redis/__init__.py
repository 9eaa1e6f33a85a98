"""Redis Streams for latentspeed: a marketstream sink and the engine's consumer-group source."""
