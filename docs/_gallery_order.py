"""Order of the gallery examples: from the building blocks to the published weights."""

from pathlib import Path

ORDER = (
    "plot_gradients.py",
    "plot_spatiotemporal_masks.py",
    "plot_pretraining.py",
    "plot_embeddings_2d.py",
    "plot_phenotype_prediction.py",
    "plot_readouts.py",
    "plot_finetuning.py",
    "nonexec_published_weights.py",
)


class ExampleOrder:
    """Sphinx-Gallery ``within_subsection_order`` key: listed files first, then by name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = Path(filename).name
        return (ORDER.index(name) if name in ORDER else len(ORDER), name)
