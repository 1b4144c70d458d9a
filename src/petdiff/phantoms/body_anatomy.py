"""The whole-body phantom's anatomy in a canonical adult frame (mm) and its FDG activities (SUV).

Frame: x to the patient's left (image right, radiological display), y anterior (image up), z cranial, z = 0 at
the bottom of the pelvis (femoral heads); pelvis 0–200, abdomen 200–440, thorax 440–650, neck 650–830 mm. Each
phantom scales this frame (width, depth, height) and jitters every solid's position, size and angle.
"""

from __future__ import annotations

from dataclasses import dataclass

BODY_CLASS_NAMES: tuple[str, ...] = (
    "background",
    "fat",
    "muscle",
    "soft_tissue",
    "lung",
    "air",
    "blood",
    "myocardium",
    "liver",
    "spleen",
    "kidney_cortex",
    "kidney_pelvis",
    "bladder",
    "bone",
    "marrow",
    "disc",
    "spinal_canal",
    "bowel",
    "stomach",
    "salivary",
    "tonsil",
    "thyroid",
    "breast",
)
TISSUE = {name: k for k, name in enumerate(BODY_CLASS_NAMES)}

# FDG uptake (SUV) per tissue: (lo, hi, log-uniform?). From the project's table of typical whole-body values
# (docs of users' scans): fat 0.2–0.5, muscle 0.5–1.2, lung 0.3–0.7, blood pool 1.5–2.2, myocardium 1–15
# (fasting dependent), liver 2–3 (mean ≈ 2.3), spleen 1.8–2.5, kidney cortex 2.5–4, collecting system up to
# 20+, bladder 10–100, marrow 1.5–2.5, bowel 1–4 (patchy). Head and neck: mean SUV palatine tonsils 3.5,
# submandibular 2.1, parotid 1.9, thyroid 1.3 (Nakamoto et al., Radiology 2005;234:879-85); tonsil SUVmax
# 1.3–11 (Birkin et al., Medicine 2018;97:e11040). Rounded assumptions: mediastinal / visceral soft tissue
# 0.6–1.2 (lungs at most 0.75× of it: aerated lung is always the darker), cortical bone 0.2–0.6, discs and
# CSF 0.3–0.8, stomach wall 1.2–3. Glandular breast tissue 0.4–1.2 (peak SUV of dense breasts ≈ 0.9, at most
# 1.4: Vranjesevic et al., J Nucl Med 2003;44:1238-42).
SUV_RANGES: dict[str, tuple[float, float, bool]] = {
    "fat": (0.2, 0.5, False),
    "muscle": (0.5, 1.2, False),
    "soft_tissue": (0.6, 1.2, False),
    "lung": (0.3, 0.7, False),
    "air": (0.0, 0.0, False),
    "blood": (1.5, 2.2, False),
    "myocardium": (1.0, 15.0, True),
    "liver": (2.0, 3.0, False),
    "spleen": (1.8, 2.5, False),
    "kidney_cortex": (2.5, 4.0, False),
    "kidney_pelvis": (4.0, 25.0, True),
    "bladder": (10.0, 100.0, True),
    "bone": (0.2, 0.6, False),
    "marrow": (1.5, 2.5, False),
    "disc": (0.3, 0.8, False),
    "spinal_canal": (0.3, 0.8, False),
    "bowel": (1.0, 4.0, False),
    "stomach": (1.2, 3.0, False),
    "salivary": (1.3, 3.0, False),
    "tonsil": (2.0, 7.0, False),
    "thyroid": (0.9, 2.0, False),
    "breast": (0.4, 1.2, False),
}
LUNG_TO_SOFT_TISSUE = 0.75  # the lungs' activity is capped at this fraction of the surrounding soft tissue's
LIVER_MEAN, LIVER_STD = 2.3, 0.25  # liver SUV ~ N(2.3, 0.25) clipped to its range: the usual reference region

# Body outline along z: semi-axes (mm) of the cross-section, and the centre's y (the neck sits posteriorly).
OUTLINE_Z = (0.0, 60.0, 140.0, 220.0, 300.0, 380.0, 460.0, 540.0, 610.0, 650.0, 690.0, 720.0, 830.0)
OUTLINE_A = (170.0, 175.0, 170.0, 160.0, 150.0, 152.0, 160.0, 165.0, 175.0, 185.0, 90.0, 62.0, 62.0)
OUTLINE_B = (115.0, 115.0, 112.0, 108.0, 105.0, 105.0, 110.0, 115.0, 115.0, 105.0, 72.0, 66.0, 68.0)
OUTLINE_Y = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -8.0, -10.0, -10.0)
NECK_Z = 680.0  # above this, the body's interior is neck muscle instead of visceral soft tissue

# Spine: the vertebral bodies' centre y and half-width along z (the sacrum below is a solid).
SPINE_Z = (190.0, 330.0, 450.0, 600.0, 660.0, 700.0, 830.0)
SPINE_Y = (-62.0, -58.0, -62.0, -68.0, -50.0, -24.0, -18.0)
SPINE_R = (23.0, 22.0, 18.0, 16.0, 14.0, 11.0, 10.0)

# Axial ranges of the four regions a slab's centre is drawn from, and how often each is drawn.
REGIONS: dict[str, tuple[float, float, float]] = {
    "pelvis": (25.0, 200.0, 0.25),
    "abdomen": (200.0, 440.0, 0.3),
    "thorax": (440.0, 650.0, 0.3),
    "neck": (650.0, 820.0, 0.15),
}


@dataclass(frozen=True)
class Solid:
    """One solid of the body: an ellipsoid (or a cylinder along z over z_range) in the canonical frame.

    A child (parent set) is placed in its parent's rotated frame: centre = parent centre + offset × parent semi,
    semi = fractions of the parent's semi-axes. `clip`: "interior" (inside the muscle wall), "body" or "none".
    """

    tissue: str
    centre: tuple[float, float, float]
    semi: tuple[float, float, float]
    angle_deg: float = 0.0
    cylinder: bool = False
    tilt: tuple[float, float] = (0.0, 0.0)  # centre drift (dx/dz, dy/dz) of a cylinder
    parent: int | None = None  # index of the parent solid in SOLIDS
    probability: float = 1.0
    size_jitter: float = 0.15
    clip: str = "interior"


def _pair(
    tissue: str, centre: tuple[float, float, float], semi: tuple[float, float, float], angle: float = 0.0, **kw: object
) -> list[Solid]:
    """The right (x < 0) and left (x > 0) copies of a bilateral solid; the angle is mirrored."""
    x, y, z = centre
    return [Solid(tissue, (-x, y, z), semi, -angle, **kw), Solid(tissue, (x, y, z), semi, angle, **kw)]


def _build_solids() -> tuple[Solid, ...]:
    """The solids in painting order (later ones cover earlier ones)."""
    s: list[Solid] = []

    def add(*solids: Solid) -> int:
        s.extend(solids)
        return len(s) - 1

    add(Solid("bowel", (0.0, 15.0, 230.0), (115.0, 70.0, 120.0), size_jitter=0.1))
    add(*_pair("muscle", (42.0, -50.0, 270.0), (18.0, 18.0, 120.0)))  # psoas
    add(*_pair("muscle", (75.0, -70.0, 90.0), (55.0, 40.0, 90.0), 20.0))  # gluteal muscles
    for side in (-1.0, 1.0):  # iliac wings, bone with marrow
        wing = add(Solid("bone", (side * 95.0, -20.0, 160.0), (14.0, 55.0, 55.0), side * 40.0))
        add(Solid("marrow", (0.0, 0.0, 0.0), (0.65, 0.85, 0.85), parent=wing, size_jitter=0.05))
    sacrum = add(Solid("bone", (0.0, -75.0, 150.0), (42.0, 18.0, 55.0)))
    add(Solid("marrow", (0.0, 0.0, 0.0), (0.8, 0.7, 0.85), parent=sacrum, size_jitter=0.05))
    for side in (-1.0, 1.0):  # femoral heads
        head = add(Solid("bone", (side * 88.0, -5.0, 45.0), (24.0, 24.0, 26.0), size_jitter=0.1))
        add(Solid("marrow", (0.0, 0.0, 0.0), (0.8, 0.8, 0.8), parent=head, size_jitter=0.05))
    add(Solid("bowel", (0.0, -45.0, 100.0), (18.0, 15.0, 55.0)))  # rectum
    add(Solid("bladder", (0.0, 35.0, 70.0), (50.0, 38.0, 38.0), size_jitter=0.35))
    add(
        *_pair("kidney_pelvis", (45.0, -25.0, 0.0), (3.5, 3.5, 0.0), cylinder=True, probability=0.5, tilt=(0.1, 0.0))
    )  # ureters (z_range below)
    add(*_pair("lung", (82.0, -5.0, 570.0), (58.0, 78.0, 125.0), size_jitter=0.1))
    add(Solid("soft_tissue", (0.0, 15.0, 570.0), (28.0, 70.0, 110.0), size_jitter=0.2))  # mediastinum
    for side, z in ((-1.0, 300.0), (1.0, 320.0)):  # kidneys: cortex around a hot collecting system
        kidney = add(Solid("kidney_cortex", (side * 70.0, -48.0, z), (28.0, 22.0, 55.0), side * 25.0))
        add(Solid("kidney_pelvis", (-side * 0.35, 0.1, 0.0), (0.35, 0.35, 0.45), parent=kidney, size_jitter=0.2))
    add(Solid("blood", (-22.0, -28.0, 0.0), (11.0, 11.0, 0.0), cylinder=True))  # inferior vena cava
    add(Solid("blood", (14.0, -32.0, 0.0), (12.0, 12.0, 0.0), cylinder=True))  # descending aorta
    add(Solid("liver", (-55.0, 5.0, 400.0), (100.0, 85.0, 85.0), -15.0, size_jitter=0.1))
    add(Solid("liver", (10.0, 35.0, 420.0), (60.0, 40.0, 50.0), 10.0))  # left lobe
    stomach = add(Solid("stomach", (55.0, 30.0, 425.0), (45.0, 35.0, 45.0), 30.0, probability=0.9))
    add(Solid("soft_tissue", (0.0, 0.0, 0.0), (0.75, 0.7, 0.75), parent=stomach, size_jitter=0.05))
    add(Solid("spleen", (85.0, -40.0, 410.0), (40.0, 25.0, 55.0), -35.0, size_jitter=0.2))
    heart = add(Solid("blood", (18.0, 25.0, 500.0), (55.0, 45.0, 55.0), 30.0, size_jitter=0.1))
    ventricle = add(Solid("myocardium", (0.3, -0.15, -0.1), (0.62, 0.7, 0.75), parent=heart, size_jitter=0.05))
    add(Solid("blood", (0.0, 0.0, 0.0), (0.55, 0.55, 0.65), parent=ventricle, size_jitter=0.1))
    add(Solid("blood", (2.0, 30.0, 0.0), (14.0, 14.0, 0.0), cylinder=True))  # ascending aorta
    add(Solid("blood", (-25.0, 25.0, 0.0), (9.0, 9.0, 0.0), cylinder=True))  # superior vena cava
    add(*_pair("bone", (105.0, -75.0, 590.0), (55.0, 7.0, 70.0), -25.0, clip="body"))  # scapulae
    for side in (-1.0, 1.0):  # humeral heads
        head = add(Solid("bone", (side * 155.0, -5.0, 650.0), (23.0, 23.0, 25.0), clip="body", size_jitter=0.1))
        add(Solid("marrow", (0.0, 0.0, 0.0), (0.8, 0.8, 0.8), parent=head, size_jitter=0.05, clip="body"))
    add(*_pair("thyroid", (18.0, 22.0, 690.0), (9.0, 9.0, 22.0), 15.0))
    add(*_pair("salivary", (35.0, 30.0, 780.0), (14.0, 11.0, 12.0)))  # submandibular glands
    add(*_pair("salivary", (47.0, 0.0, 800.0), (13.0, 18.0, 26.0), clip="body"))  # parotids
    add(*_pair("tonsil", (13.0, 18.0, 800.0), (8.0, 8.0, 12.0), probability=0.9))
    add(*_pair("blood", (28.0, 5.0, 0.0), (6.0, 6.0, 0.0), cylinder=True))  # jugular veins / carotids
    add(Solid("air", (0.0, 10.0, 0.0), (9.0, 9.0, 0.0), cylinder=True, tilt=(0.0, 0.085)))  # trachea
    return tuple(s)


SOLIDS = _build_solids()
# Axial extent (lo, hi) of each cylinder, in the order the cylinders appear in SOLIDS.
_CYLINDER_Z = (
    (100.0, 290.0),  # right ureter
    (100.0, 290.0),  # left ureter
    (240.0, 470.0),  # inferior vena cava
    (230.0, 600.0),  # descending aorta
    (530.0, 600.0),  # ascending aorta
    (540.0, 640.0),  # superior vena cava
    (640.0, 830.0),  # right jugular / carotid
    (640.0, 830.0),  # left jugular / carotid
    (590.0, 830.0),  # trachea
)
CYLINDER_Z: dict[int, tuple[float, float]] = dict(
    zip([i for i, solid in enumerate(SOLIDS) if solid.cylinder], _CYLINDER_Z, strict=True)
)
ARM_Z = (260.0, 640.0)  # arms beside the body (when present) over this axial range
BREAST_Z = (490.0, 570.0)  # range of the breasts' centre level (when present), on the anterior chest wall
