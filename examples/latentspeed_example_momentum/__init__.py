"""An example third-party latentspeed strategy plugin (a momentum taker)."""
