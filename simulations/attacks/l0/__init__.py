"""The l0 invariance attack on MNIST and the judges that accept its candidates.

Modules: :mod:`.transforms` (warps and thickness changes, binarised l0),
:mod:`.subsets` (clusters of differing pixels and the smallest accepted union),
:mod:`.search` (the coarse-to-fine alignment search and its budget :class:`L0Search`),
:mod:`.judges` (what an image reads as) and :mod:`.attack` (the attack itself and the
batch runner glue). The public names are re-exported here.
"""

from invariance_tradeoffs.simulations.attacks.l0.attack import (
    L0InvarianceAttack,
    L0Result,
    L0Run,
    batch_attack,
    run_medians,
    summarize_run,
)
from invariance_tradeoffs.simulations.attacks.l0.judges import KNNEdits, KNNJudge, binarize
from invariance_tradeoffs.simulations.attacks.l0.search import (
    BUDGETS,
    PUBLISHED_TARGETS,
    Alignment,
    AlignmentSearch,
    L0Search,
    resolve_targets,
)
from invariance_tradeoffs.simulations.attacks.l0.subsets import (
    SubsetSearch,
    apply_edit,
    candidate_clusters,
    smallest_accepted_subset,
    subsets_by_size,
)
from invariance_tradeoffs.simulations.attacks.l0.transforms import (
    PARAM_NAMES,
    TransformSpace,
    change_thickness,
    l0_distance,
    transform_images,
    warp,
)

__all__ = [
    "BUDGETS", "PARAM_NAMES", "PUBLISHED_TARGETS", "Alignment", "AlignmentSearch",
    "KNNEdits", "KNNJudge", "L0InvarianceAttack", "L0Result", "L0Run", "L0Search",
    "SubsetSearch", "TransformSpace", "apply_edit", "batch_attack", "binarize",
    "candidate_clusters", "change_thickness", "l0_distance", "resolve_targets",
    "run_medians", "smallest_accepted_subset", "subsets_by_size", "summarize_run",
    "transform_images", "warp",
]
