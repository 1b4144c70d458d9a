"""Training data: on-the-fly (full-dose, low-dose) pairs, pair files, phantom sources, image datasets, sampler."""

from petdiff.data.images import ImageFolderDataset
from petdiff.data.normalization import NORMALIZATIONS, Normalizer
from petdiff.data.pair_file import PairFileDataset, write_pairs
from petdiff.data.pairs import TARGETS, Pairs, PairSimulator, perturb_activity
from petdiff.data.sampler import InfiniteSampler
from petdiff.data.sources import FileSource, ProceduralSource, phantom_source

__all__ = [
    "NORMALIZATIONS",
    "TARGETS",
    "FileSource",
    "ImageFolderDataset",
    "InfiniteSampler",
    "Normalizer",
    "PairFileDataset",
    "PairSimulator",
    "Pairs",
    "ProceduralSource",
    "perturb_activity",
    "phantom_source",
    "write_pairs",
]
