"""The dashboard's helpers shared by its pages, kept out of ``pages/`` so that folder holds only pages.

* ``shared``: session defaults, the comparison being set up, the current dataset, error boxes, the hardware targets.
* ``jobwatch``: following a job from any page (``?job=`` in the address, the sidebar's poller).
* ``auth``: sign-in for a team's hosted lab (``QLAB_AUTH=oidc``) and the page a visitor who may not see the lab gets.
"""
