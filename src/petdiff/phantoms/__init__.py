"""Phantom sources (BrainWeb reference slices, procedural brain-like phantoms, whole-body slabs, users' images)
and the Dirichlet tissue-concentration perturbation."""

from petdiff.phantoms.body import body_slabs
from petdiff.phantoms.body_anatomy import BODY_CLASS_NAMES
from petdiff.phantoms.brain_slabs import brain_slabs
from petdiff.phantoms.brainweb import brainweb_labels, load_brainweb
from petdiff.phantoms.config import CLASS_NAMES, PhantomConfig
from petdiff.phantoms.dirichlet import log_standard_gamma, sample_dirichlet, sample_gamma
from petdiff.phantoms.lesions import LesionConfig, insert_lesions
from petdiff.phantoms.perturb import perturb_concentrations, perturbed_class_concentrations
from petdiff.phantoms.procedural import Phantoms, procedural_phantoms
from petdiff.phantoms.resample import resample_images
from petdiff.phantoms.scan_slabs import scan_slabs
from petdiff.phantoms.slabs import Slabs, concat_slabs
from petdiff.phantoms.volumes import Volume, load_images, load_volume, save_nifti

__all__ = [
    "BODY_CLASS_NAMES",
    "CLASS_NAMES",
    "LesionConfig",
    "PhantomConfig",
    "Phantoms",
    "Slabs",
    "Volume",
    "body_slabs",
    "brain_slabs",
    "brainweb_labels",
    "concat_slabs",
    "insert_lesions",
    "load_brainweb",
    "load_images",
    "load_volume",
    "log_standard_gamma",
    "perturb_concentrations",
    "perturbed_class_concentrations",
    "procedural_phantoms",
    "resample_images",
    "sample_dirichlet",
    "sample_gamma",
    "save_nifti",
    "scan_slabs",
]
