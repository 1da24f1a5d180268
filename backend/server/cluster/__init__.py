"""``inhabit serve --cluster``: the same front end, jobs run by engine actors on a Ray cluster.

Nothing in the server imports this package, and this package imports Ray only
inside functions, unless ``--cluster`` is given (``tests/test_layers.py``
keeps ``inhabit serve`` and ``inhabit --help`` free of Ray).

- ``ray_import``: Ray itself, or one sentence naming the extra to install
- ``connect``: joining the cluster and the checks made before the server listens
- ``host``: the actor that holds one warm engine on one GPU slot
- ``pool``: actors per engine and weights, as many as the cluster has slots
- ``relay``: the scheduler whose workers stream a job's frames to an actor and its results back
- ``tasks``: dataset clips and eval runs spread as Ray tasks
"""
