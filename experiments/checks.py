"""The checks that refuse an experiment before anything runs (bad input: exit 2): the model fits
each pool, faults name what exists, the run fits in memory, the workload is sound and every
policy exists. Pure: no engine is built."""

from __future__ import annotations

from disagg.cluster.catalog_checks import check_context, check_fp8, check_slo_classes
from disagg.cluster.config import Experiment
from disagg.cluster.facts import (
    check_fault_times,
    check_faults,
    check_fit,
    check_size,
    slo_targets,
)
from disagg.cluster.workload.plan import check_workload
from disagg.policies.context import check_policies


def check_experiment(exp: Experiment) -> None:
    """Checks that need the catalog, the performance models and the policy registries."""
    check_fp8(exp)
    check_context(exp)
    check_slo_classes(exp)
    check_fit(exp)
    check_faults(exp)
    check_fault_times(exp)
    check_size(exp)
    check_workload(exp.workload, slo_targets(exp), exp.experiment.duration_s)
    check_policies(exp)
