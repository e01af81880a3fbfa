"""Routed tickets after they are made: building them, their lifecycle (acknowledged, resolved, closed),
deadline clocks, and the HTTP endpoint teams report back through."""
