"""The engines that host the components: ``virtual`` (one process, virtual time), ``ray_engine``
(one Ray actor per component, wall-clock time with dilation) with ``placement``, ``clock_sync``
and ``supervisor``; ``build`` constructs components for both; ``parallel`` fans many virtual
runs out as Ray tasks.
"""
