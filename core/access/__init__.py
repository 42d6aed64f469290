"""Who may use a hosted lab and what they may do: the hosted mode's limits and roles (hosting.py) and the signed-in
identity (identity.py)."""
