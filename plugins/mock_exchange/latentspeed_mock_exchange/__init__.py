"""Mock exchange (TCP binary protocol), its feed and its execution venue for latentspeed."""
