"""``disagg plan --robust``: the plan's decision evaluated over the space of unpublished constants
(the catalog's ranges, the user's ranges, the models' error); see docs/plan.md, "Robust plans"."""
