"""petdiff: low-dose PET enhancement with conditional EDM diffusion models.

Stages (each imports only from the ones before it):
phantoms → physics → recon → data → models → diffusion → training → evaluate.
"""

__version__ = "0.1.0"
